"""Session-wide real components: printers (snmpsim), a test PKI and a Mosquitto broker.

A missing component skips on a workstation and fails under ``CI=true``
(``support.require``): CI must not turn green by not testing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import INSTALL_MOSQUITTO, INSTALL_SNMPSIM, PRINTERS, require
from support.broker import Broker
from support.pki import Pki
from support.process import free_udp_port
from support.snmpsim import Simulator, responder_binary


@pytest.fixture(scope="session")
def printers() -> Iterator[Simulator]:
    """snmpsim serving tests/printers/*.snmprec; community = recording name.

    It listens on 127.0.0.1 to 127.0.0.8 (one port), so a test can give each printer an
    address of its own, as on a real LAN (`.addresses`); `.address` is the first.
    """
    require(responder_binary(), INSTALL_SNMPSIM)
    port = free_udp_port()
    with Simulator(data_dir=PRINTERS, endpoints=[(f"127.0.0.{i}", port) for i in range(1, 9)]) as sim:
        yield sim


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Test CA, broker certificates and box client certificates (PEM files)."""
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Mosquitto with mutual TLS and the per-box ACL, shared by the session.

    Tests that stop or restart the broker make their own ``Broker(pki)`` instead.
    """
    require("mosquitto", INSTALL_MOSQUITTO)
    with Broker(pki, work_dir=tmp_path_factory.mktemp("broker")) as b:
        yield b
