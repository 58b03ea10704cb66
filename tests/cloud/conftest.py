"""The vendor side under test, once per database: SQLite and PostgreSQL run the same tests.

Each backend gets its own stack (database, CA, Mosquitto with the generated configuration, web
service, two ingest workers). Boxes are minted fresh per test, so tests do not see each other.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstack import PG_BIN, Postgres, Vendor, vendor_stack
from support import INSTALL_MOSQUITTO, require


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    require((PG_BIN / "initdb").exists() and shutil.which("runuser") is not None,
            "apt-get install postgresql (PostgreSQL 15 server binaries)")
    pg = Postgres()
    try:
        yield pg.start()
    finally:
        pg.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def vendor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vendor]:
    require("mosquitto", INSTALL_MOSQUITTO)
    work = tmp_path_factory.mktemp(f"vendor-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{work / 'vendor.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database("meterbox")
    with vendor_stack(work, url) as stack:
        yield stack


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
