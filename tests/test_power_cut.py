"""A power cut is not a SIGKILL: what was not fsync'd is really gone (tests/support/lossyfs.py,
a FUSE file system in the manner of LazyFS). The real daemon polls and uploads to a real
Mosquitto with its state directory on that disk; the power goes at random moments; after each
restart nothing the broker acknowledged is missing from the store or sent again under a new
id, everything that was durable is delivered or still waiting, and the store opens cleanly."""

from __future__ import annotations

import collections
import os
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import pytest

from support import require
from support.broker import Broker
from support.daemon import BOX_ID, BoxConfig, Daemon, PrinterEntry
from support.lossyfs import LossyDisk
from support.pki import Pki
from support.process import free_udp_port
from support.snmpsim import Simulator
from support.subscriber import Subscriber

THREE = {"jetdirect_m130nw": "VNCRC48198", "konica_c250i": "AA2M021115700", "epson": "X3B8022793"}
CUTS = int(os.environ.get("METERBOX_POWER_CUTS", "8"))
INSTALL_FUSE = "apt-get install fuse3 libfuse2 and pip install -e '.[test]' (mfusepy); the kernel needs FUSE (/dev/fuse)"


def require_fuse() -> None:
    """FUSE in the kernel, fusermount, and mfusepy able to load libfuse: else fail under CI=true."""
    require(Path("/dev/fuse").exists(), f"/dev/fuse (FUSE in the kernel) is missing: {INSTALL_FUSE}")
    require("fusermount", INSTALL_FUSE)
    try:
        import mfusepy  # noqa: F401  (loads libfuse)
    except (ImportError, OSError) as err:
        require(False, f"mfusepy cannot load libfuse ({err}): {INSTALL_FUSE}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[LossyDisk]:
    require_fuse()
    with LossyDisk(tmp_path / "platter", tmp_path / "state") as lossy:
        yield lossy


@pytest.fixture
def own_broker(pki: Pki, tmp_path: Path) -> Iterator[Broker]:
    with Broker(pki, work_dir=tmp_path / "broker") as broker:
        yield broker


def durable(platter: Path, scratch: Path) -> dict[str, tuple[str, str]]:
    """id -> (kind, serial) of every message on the platter (what survived), after an integrity check.

    Read from a copy without the -shm file, as SQLite finds it after a boot.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    for name in ("meterbox.db", "meterbox.db-wal"):
        if (platter / name).exists():
            shutil.copy(platter / name, scratch / name)
    if not (scratch / "meterbox.db").exists():
        return {}
    db = sqlite3.connect(scratch / "meterbox.db")
    try:
        check = db.execute("PRAGMA integrity_check").fetchall()
        assert check == [("ok",)], f"the store does not open cleanly after a power cut: {check}"
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name='messages'").fetchone():
            return {}   # not even the schema reached the platter
        return {i: (k, s) for i, k, s in db.execute("SELECT id, kind, serial FROM messages")}
    finally:
        db.close()


def settled(sub: Subscriber) -> set[str]:
    """Ids the vendor has from this box, once the broker has passed on what it acknowledged."""
    count, quiet = -1, 0.0
    while quiet < 0.5:
        time.sleep(0.1)
        now = len(sub.messages)
        quiet = quiet + 0.1 if now == count else 0.0
        count = now
    return {m.json["id"] for m in sub.messages if m.box == BOX_ID}


def test_the_lossy_disk_really_loses_what_was_not_synced(disk: LossyDisk) -> None:
    """The harness itself: unsynced data goes, synced stays; SQLite commits survive only when fsync'd."""
    (disk.mount / "unsynced").write_bytes(b"lost at the cut")
    with open(disk.mount / "synced", "wb") as f:
        f.write(b"kept")
        f.flush()
        os.fsync(f.fileno())
    open_when_the_power_went = []
    for sync in ("FULL", "OFF"):
        db = sqlite3.connect(disk.mount / f"{sync}.db", isolation_level=None)
        open_when_the_power_went.append(db)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute("CREATE TABLE t(x)")
        for i in range(50):
            db.execute("INSERT INTO t VALUES(?)", (i,))
    dropped = disk.cut()
    assert dropped["writes"] > 0
    assert (disk.mount / "unsynced").read_bytes() == b""
    assert (disk.mount / "synced").read_bytes() == b"kept"
    full = sqlite3.connect(disk.mount / "FULL.db")
    assert full.execute("SELECT count(*) FROM t").fetchone() == (50,)
    full.close()
    off = sqlite3.connect(disk.mount / "OFF.db")
    with pytest.raises(sqlite3.OperationalError):  # not even the table reached the platter
        off.execute("SELECT count(*) FROM t").fetchone()
    off.close()


@pytest.mark.slow
def test_a_power_cut_loses_nothing_the_broker_acknowledged_and_doubles_nothing(
        tmp_path: Path, disk: LossyDisk, printers: Simulator, own_broker: Broker,
        capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("METERBOX_POWER_CUT_SEED", time.time()))
    rng = random.Random(seed)
    box = BoxConfig(state_dir=disk.mount, broker=own_broker, interval="200ms",
                    printers=[PrinterEntry(a, n) for a, n in zip(printers.addresses, THREE)])
    config = box.write(tmp_path / "meterbox.toml")
    survived: dict[str, tuple[str, str]] = {}    # every message that was durable at some cut
    dropped_writes = dropped_bytes = 0
    with capsys.disabled():
        print(f"\npower cuts: seed {seed} (METERBOX_POWER_CUT_SEED replays it)")
    with Subscriber(own_broker) as sub:
        daemon = Daemon(config, tmp_path)
        for cut in range(CUTS):   # polling and uploading all the time: the power goes anywhere in it
            daemon.start()
            time.sleep(rng.uniform(0.3, 3.0))
            daemon.kill()          # the process dies with the power ...
            dropped = disk.cut()   # ... and so does every write the disk had not been made to keep
            dropped_writes += dropped["writes"]
            dropped_bytes += dropped["bytes"]
            vendor = settled(sub)
            now = durable(disk.platter, tmp_path / "scratch")
            missing = vendor - set(now)
            assert not missing, (f"cut {cut + 1}: the broker acknowledged {len(missing)} messages the store no "
                                 f"longer has (published before they were durable): {sorted(missing)[:5]}")
            survived.update(now)
        box.printers = [PrinterEntry(f"127.0.0.1:{free_udp_port()}", "silent")]
        with Daemon(box.write(tmp_path / "drain.toml"), tmp_path) as drain:   # one orderly run empties the outbox
            drain.wait_status(lambda s: s["backlog"] == 0, timeout=60)
        final = durable(disk.platter, tmp_path / "scratch")
        sub.wait_for(lambda ms: set(final) <= {m.json["id"] for m in ms}, timeout=30)
        received = [m for m in sub.messages if m.box == BOX_ID]
    got = {m.json["id"] for m in received}
    assert set(survived) <= set(final), "a message that was durable at a cut was lost later"
    assert set(final) <= got, f"durable but never delivered: {len(set(final) - got)}"
    assert got <= set(final), f"delivered under an id the store does not have: {len(got - set(final))}"
    devices = collections.Counter(m.json["serial"] for m in {m.json["id"]: m for m in received}.values()
                                  if m.kind == "devices")
    assert devices == {s: 1 for s in THREE.values()}, devices   # one announcement per printer, ever
    assert "damaged" not in daemon.whole_log() and not list(disk.platter.glob("meterbox.db.corrupt-*"))
    assert dropped_writes > 0, "the cuts dropped nothing: the test did not test a power cut"
    readings = sum(1 for kind, _ in final.values() if kind == "reading")
    with capsys.disabled():
        print(f"power cuts: {CUTS} cuts dropped {dropped_writes} unsynced writes ({dropped_bytes / 1024:.0f} KiB); "
              f"{len(final)} messages ({readings} readings) checked: every one the broker acknowledged was "
              f"durable, all delivered, none under a second id; "
              f"{len(received) - len(got)} raw redeliveries (same id)")
