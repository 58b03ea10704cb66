"""Benchmark: a /24 sweep with 20 printers and every other address silent, against the peer.

Run (as root; it builds network namespaces and removes them after):

    .venv/bin/python bench/discovery_sweep.py [--runs 3] [--peer-timeout 300] [--peer-threads 20]

The LAN is the discovery tests' (tests/support/netns.py): the box alone in one network
namespace, a /24 in another where 20 addresses hold printers (snmpsim, real recordings)
and 233 addresses drop SNMP without an ICMP answer. Both tools sweep it from the box
namespace with v2c "public", timeout 1 s:

- meterbox: `meterbox discover --json --no-mdns` with zero configuration (it sweeps the
  subnet of its interface), 1 retry, 500 packets/s;
- peer: FusionInventory netdiscovery 2.6 (Debian fusioninventory-agent-task-network),
  bounded with `timeout`; "did not finish" is reported as such.

Packets are the box namespace's own kernel counters (/proc/net/snmp: IP packets out and
UDP datagrams out), so both tools are counted the same way, ARP aside. Wall time is the
whole process, start-up included; meterbox's own sweep time is shown too. Medians.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.netns import Lan, Printers, recording  # noqa: E402

TIMEOUT = 1
# 20 printers: 11 with their own Printer-MIB serial, 9 real recordings given one
PRINTERS = ["brother_hl-l8260cdw", "canonprinter_lbp", "epson", "epson_cw-c6500au", "epson_sc-t3405",
            "fujifilmprinter_c7580", "jetdirect_m130nw", "konica_c250i", "kyocera_cs-4053ci", "sharp",
            "xerox_apeosport"]
SYNTHETIC = ["jetdirect", "jetdirect_context", "jetdirect_m252dw", "konica", "okilan_9450g",
             "samsungprinter_m4080fx", "xerox", "jetdirect", "konica"]


def counters(lan: Lan) -> tuple[int, int]:
    """(IP packets out, UDP datagrams out) of the box namespace."""
    text = subprocess.run(["ip", "netns", "exec", lan.box, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in text.splitlines()]
    table = {}
    for names, values in zip(rows[::2], rows[1::2]):
        table.update({f"{names[0]}{k}": v for k, v in zip(names[1:], values[1:])})
    return int(table["Ip:OutRequests"]), int(table["Udp:OutDatagrams"])


def measured(lan: Lan, argv: list[str], limit: float) -> dict[str, object]:
    """Run ARGV in the box namespace under `timeout`; wall time, packets, output."""
    ip0, udp0 = counters(lan)
    started = time.monotonic()
    done = subprocess.run(["ip", "netns", "exec", lan.box, "timeout", "-k", "5", str(limit), *argv],
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    ip1, udp1 = counters(lan)
    return {"wall": wall, "ip": ip1 - ip0, "udp": udp1 - udp0, "finished": done.returncode not in (124, 137),
            "stdout": done.stdout, "stderr": done.stderr}


def run_meterbox(lan: Lan) -> dict[str, object]:
    got = measured(lan, [sys.executable, "-m", "meterbox", "discover", "--json", "--no-mdns",
                         "--timeout", str(TIMEOUT)], 120)
    rows = json.loads(str(got["stdout"])) if got["finished"] else []
    sweep = re.search(r"sweep of \d+ addresses took ([\d.]+) s", str(got["stderr"]))
    got["sweep"] = float(sweep[1]) if sweep else None
    got["found"] = {r["serial"] for r in rows if r["serial"]}
    return got


def run_peer(lan: Lan, limit: float, threads: int) -> dict[str, object]:
    got = measured(lan, ["fusioninventory-netdiscovery", "--first", lan.address(1), "--last", lan.address(254),
                         "--credentials", "version:2c,community:public", "--threads", str(threads),
                         "--timeout", str(TIMEOUT)], limit)
    got["sweep"] = None
    got["found"] = set(re.findall(r"<SERIAL>([^<]+)</SERIAL>", str(got["stdout"])))
    return got


def median(runs: list[dict[str, object]], key: str) -> float | None:
    values = [float(r[key]) for r in runs if r.get(key) is not None]  # type: ignore[arg-type]
    return statistics.median(values) if values else None


def show(ours: list[dict[str, object]], peer: list[dict[str, object]], limit: float, expected: int) -> None:
    finished = all(r["finished"] for r in peer)
    print(f"\n/24 sweep: {expected} printers, 233 silent addresses (dropped, no ICMP), v2c, timeout {TIMEOUT} s")
    print(f"{'':30}{'meterbox discover':>22}{'FusionInventory 2.6':>24}{'peer / meterbox':>18}")
    ours_wall, peer_wall = median(ours, "wall") or 0.0, median(peer, "wall") or 0.0
    peer_text = f"{peer_wall:.1f}" if finished else f"did not finish in {limit:g}"
    ratio = f"{peer_wall / ours_wall:.0f}x" if finished else f"> {limit / ours_wall:.0f}x"
    print(f"{'wall time, process (s)':30}{ours_wall:>22.1f}{peer_text:>24}{ratio:>18}")
    print(f"{'  of which the sweep (s)':30}{median(ours, 'sweep') or 0:>22.1f}{'-':>24}")
    for key, name in (("udp", "UDP datagrams sent"), ("ip", "IP packets sent")):
        mine, theirs = median(ours, key) or 0.0, median(peer, key) or 0.0
        suffix = "" if finished else " (until stopped)"
        print(f"{name:30}{mine:>22.0f}{f'{theirs:.0f}{suffix}':>24}{theirs / max(mine, 1):>17.1f}x")
    ours_found = f"{min(len(r['found']) for r in ours)}/{expected}"  # type: ignore[arg-type]
    peer_found = f"{min(len(r['found']) for r in peer)}/{expected}"  # type: ignore[arg-type]
    print(f"{'printers found (serials)':30}{ours_found:>22}{peer_found:>24}")
    print(f"{'target P3':30}{'<= 2 x timeout + 1 s = 3 s for the sweep':>40}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="meterbox sweeps to take the median of (default 3)")
    p.add_argument("--peer-runs", type=int, default=1, help="peer sweeps (default 1: it is slow)")
    p.add_argument("--peer-timeout", type=float, default=300, help="stop the peer after this many seconds")
    p.add_argument("--peer-threads", type=int, default=20, help="netdiscovery --threads (default 20)")
    args = p.parse_args()
    if not shutil.which("fusioninventory-netdiscovery"):
        print("fusioninventory-netdiscovery is missing: apt-get install fusioninventory-agent-task-network",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-discovery-"))
    try:
        with Lan(work) as lan:
            served = {lan.address(10 + n): recording(name) for n, name in enumerate(PRINTERS)}
            served.update({lan.address(10 + len(PRINTERS) + n): recording(name, f"MBBENCH-{n:02d}")
                           for n, name in enumerate(SYNTHETIC)})
            with Printers(lan, work / "printers", served):
                ours = [run_meterbox(lan) for _ in range(args.runs)]
                peer = [run_peer(lan, args.peer_timeout, args.peer_threads) for _ in range(args.peer_runs)]
            show(ours, peer, args.peer_timeout, len(served))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
