"""Benchmark P4 (idle): the daemon's CPU when there is nothing to do.

Run:  .venv/bin/python bench/idle.py [--seconds 60]

One printer read every 15 minutes, connected to a real Mosquitto over mutual TLS, nothing to
send: what is left is the event loop's own ticks (the pump, the live status and LEDs, the
pause switch, paho's keepalive). CPU comes from /proc/PID/stat over the window, after start-up.
Target (PERFORMANCE.md P4): < 1 % of a core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.broker import Broker  # noqa: E402
from support.daemon import BoxConfig, Daemon, PrinterEntry  # noqa: E402
from support.pki import Pki  # noqa: E402
from support.snmpsim import Simulator  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="meterbox-bench-") as tmp:
        work = Path(tmp)
        with Simulator(ROOT / "tests" / "printers") as sim, Broker(Pki(work / "pki"), work_dir=work / "broker") as broker:
            box = BoxConfig(state_dir=work / "state", broker=broker, interval="15m",
                            printers=[PrinterEntry(sim.address, "jetdirect_m130nw")])
            with Daemon(box.write(work / "meterbox.toml"), work) as daemon:
                assert daemon.proc is not None
                daemon.wait_status(lambda s: bool(s["last_upload"]) and s["backlog"] == 0, timeout=30)
                time.sleep(5)                                  # start-up work done
                cpu0, t0 = cpu_seconds(daemon.proc.pid), time.monotonic()
                time.sleep(args.seconds)
                cpu1, t1 = cpu_seconds(daemon.proc.pid), time.monotonic()
    share = (cpu1 - cpu0) / (t1 - t0) * 100
    print(f"daemon idle (one printer every 15 min, connected, nothing to send): {share:.2f} % of a core over "
          f"{t1 - t0:.0f} s (P4 target < 1 %: {'ok' if share < 1 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
