"""Benchmark: store-and-forward. Backlog drain rate, disk bytes written and store size per reading.

Run:  .venv/bin/python bench/store_forward.py [--readings 100000] [--in-flight 20]

1. Store: N readings (a colour printer's: 6 meters, 6 supplies) are written through the
   daemon's own Store.add_readings, in commits of one poll round (--round readings, as
   the daemon's 0.5 s group commit makes them) and, for a sample, one printer alone: each
   reading its own commit, and its PUBACK's mark another, as the daemon does. Bytes written per reading come from /proc/self/io write_bytes (what
   reached the block layer: WAL, checkpoints, fsyncs); store size per reading from the
   file.
2. Drain: the real `meterbox run` starts with that backlog and a real Mosquitto (mutual
   TLS, QoS 1) on loopback; the rate is readings acknowledged by the broker (and marked
   sent in the store) per second, from the first to the last; the daemon's own
   /proc/PID/io write_bytes during the drain gives the bytes written per reading sent.
Targets (PERFORMANCE.md): P5 drain >= 2,000 readings/s; P6 <= 2 KiB written per reading.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from meterbox.printers.reading import Device, Meter, Reading, Supply  # noqa: E402
from meterbox.outbox.store import Store  # noqa: E402
from support.broker import Broker  # noqa: E402
from support.daemon import BOX_ID, BoxConfig, Daemon, PrinterEntry  # noqa: E402
from support.pki import Pki  # noqa: E402
from support.process import free_udp_port  # noqa: E402

P5 = 2000.0
P6 = 2048.0
PRINTERS = 50


def write_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


def reading(i: int, t0: float) -> tuple[Device, Reading]:
    serial = f"BENCH{i % PRINTERS:04d}"
    base = 100_000 + i
    meters = [Meter("impressions.total", base, "impressions"), Meter("impressions.black", base // 2, "impressions"),
              Meter("impressions.color", base // 2, "impressions"), Meter("sheets.total", base // 3, "sheets"),
              Meter("sheets.duplex", base // 9, "sheets"), Meter("marker.life", base, "impressions")]
    supplies = [Supply(f"toner.{c}", 60 - i % 50, "ok") for c in ("black", "cyan", "magenta", "yellow")]
    supplies += [Supply("drum.black", 80, "ok"), Supply("waste.none", None, "some-remaining")]
    return (Device(serial, "Bench", "Colour 9000"),
            Reading(serial, t0 + i, meters, supplies, clock="ntp", mono=float(i), boot="bench"))


def fill(path: Path, count: int, per_commit: int, *, lone: bool = False) -> tuple[float, float]:
    """Write COUNT readings in commits of PER_COMMIT; return (bytes written, seconds) per reading.

    LONE: one printer's readings, each followed by the commit of its PUBACK, as the daemon
    does when the broker answers before the next poll (the mark-sent commit is its own)."""
    store = Store(path)
    t0 = time.time() - count
    before, started = write_bytes(), time.perf_counter()
    for start in range(0, count, per_commit):
        batch = [reading(i * PRINTERS if lone else i, t0) for i in range(start, min(start + per_commit, count))]
        store.add_readings(BOX_ID, batch)
        if lone:
            store.mark_sent([m.id for m in store.pending(per_commit)])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spent, written = time.perf_counter() - started, write_bytes() - before
    store.close()
    return written / count, spent / count


def backlog(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT (SELECT count(*) FROM messages) - (SELECT count(*) FROM sent)").fetchone()[0])
    finally:
        db.close()


def drain(work: Path, state: Path, in_flight: int, expected: int) -> tuple[float, float, int]:
    """Run the daemon on the stored backlog; return (readings/s, bytes written per reading, sent)."""
    pki = Pki(work / "pki")
    with Broker(pki, work_dir=work / "broker") as broker:
        box = BoxConfig(state_dir=state, broker=broker, interval="1h",
                        printers=[PrinterEntry(f"127.0.0.1:{free_udp_port()}", "nobody")],
                        uplink_extra=f"in_flight = {in_flight}",
                        extra=f'\n[store]\nmax_size = "{max(expected * 4, 64 << 20) >> 20}MiB"\n')
        daemon = Daemon(box.write(work / "meterbox.toml"), work)
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        try:
            daemon.wait_log(r"connected to", timeout=30)
            w0, t0, left0 = write_bytes(pid), time.perf_counter(), backlog(state / "meterbox.db")
            deadline = time.monotonic() + 600
            while (left := backlog(state / "meterbox.db")) > 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            spent, written = time.perf_counter() - t0, write_bytes(pid) - w0
        finally:
            daemon.stop()
    sent = left0 - left
    return sent / spent, written / max(sent, 1), sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--round", type=int, default=PRINTERS, help="readings per commit (one poll round)")
    ap.add_argument("--in-flight", type=int, default=None, help="uplink.in_flight (default: the config default)")
    ap.add_argument("--dir", type=Path, default=None, help="where the store lives (default: a temp dir on /var/tmp)")
    args = ap.parse_args()
    from meterbox.config import UplinkConfig
    in_flight = args.in_flight or UplinkConfig().in_flight
    with tempfile.TemporaryDirectory(prefix="meterbox-bench-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        fs = os.statvfs(tmp)
        print(f"store on {tmp} ({fs.f_bsize}-byte blocks); {args.readings:,} readings of {PRINTERS} printers")
        single_w, single_t = fill(work / "single.db", 2000, 1, lone=True)
        state = work / "state"
        state.mkdir()
        round_w, round_t = fill(state / "meterbox.db", args.readings, args.round)
        size = (state / "meterbox.db").stat().st_size / args.readings
        rate, drain_w, sent = drain(work, state, in_flight, args.readings)
    print(f"{'figure':<56} {'measured':>12} {'target':>12}")
    rows = [
        (f"store: written per reading, {args.round} per commit (poll round)", f"{round_w:,.0f} B", ""),
        ("store + sent: written per reading, lone printer (2 commits)", f"{single_w:,.0f} B", ""),
        ("drain: written per reading sent (mark sent)", f"{drain_w:,.0f} B", ""),
        (f"P6 written per reading, stored + sent ({args.round}/commit)", f"{round_w + drain_w:,.0f} B",
         f"<= {P6:,.0f} B " + ("ok" if round_w + drain_w <= P6 else "MISSED")),
        ("P6 written per reading, stored + sent (lone printer)", f"{single_w:,.0f} B",
         f"<= {P6:,.0f} B " + ("ok" if single_w <= P6 else "MISSED")),
        ("store size per reading", f"{size:,.0f} B", ""),
        ("CPU+wall to store one reading (poll round)", f"{round_t * 1e6:,.0f} us", ""),
        (f"P5 drain to Mosquitto, QoS 1, in_flight {in_flight} ({sent:,} readings)", f"{rate:,.0f} /s",
         f">= {P5:,.0f} /s " + ("ok" if rate >= P5 else "MISSED")),
    ]
    for name, value, target in rows:
        print(f"{name:<56} {value:>12} {target:>12}")


if __name__ == "__main__":
    main()
