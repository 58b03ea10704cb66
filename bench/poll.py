"""Benchmark: cost of one printer poll, and of the daemon polling many printers.

Run:  .venv/bin/python bench/poll.py [--polls 50] [--printers 50] [--seconds 40]

Prints, on the three printers PERFORMANCE.md names (HP M130nw, Ricoh MP C, Brother
HL-L8260CDW), served by snmpsim on loopback:
- CPU and wall time per poll and SNMP requests per poll of meterbox's poller, beside two
  peers measured in the same run: a plain pysnmp asyncio poller (GET + bulk_walk_cmd,
  max-repetitions 10, with and without MIB look-ups) and net-snmp's snmpget + 4 snmpbulkwalk
  processes; snmp_exporter's figures are quoted from PERFORMANCE.md (not installed here);
- the daemon (`meterbox run`) polling N simulated printers, with a real Mosquitto: peak RSS,
  CPU per poll, bytes written to disk per poll cycle and per reading (/proc/PID/io), and the
  time from process start to the first reading stored.
Medians; these machines are noisy, so read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from meterbox.config import Credential, Secret  # noqa: E402
from meterbox.printers.poll import Hint, read_printer  # noqa: E402
from meterbox.printers.snmp import SnmpClient, Target  # noqa: E402
from support.broker import Broker  # noqa: E402
from support.daemon import BoxConfig, Daemon, PrinterEntry  # noqa: E402
from support.pki import Pki  # noqa: E402
from support.process import free_udp_port  # noqa: E402
from support.snmpsim import Simulator  # noqa: E402

PEERS = {"jetdirect_m130nw": "HP M130nw", "ricoh_mpc2503": "Ricoh MP C2503",
         "brother_hl-l8260cdw": "Brother HL-L8260CDW"}
SNMP_EXPORTER_MS = {"jetdirect_m130nw": 2.2, "ricoh_mpc2503": 2.4, "brother_hl-l8260cdw": 3.6}
IDENTITY = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.25.3.2.1.3.1", "1.3.6.1.2.1.43.5.1.1.17.1"]
TABLES = ["1.3.6.1.2.1.43.10.2.1", "1.3.6.1.2.1.43.11.1.1"]


async def meterbox_polls(address: tuple[str, int], community: str, n: int) -> tuple[float, float, float]:
    """Median CPU ms, wall ms and requests per poll of meterbox's poller (engine kept alive)."""
    client = SnmpClient()
    target = Target(address[0], address[1], Credential(community=Secret(community)), timeout=2.0)
    hint = Hint()
    await read_printer(client, target, hint)  # first poll learns the profile and table sizes
    cpu, wall, reqs = [], [], []
    for _ in range(n):
        c0, w0, r0 = time.process_time(), time.perf_counter(), client.requests
        await read_printer(client, target, hint)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        reqs.append(client.requests - r0)
    client.close()
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000, statistics.median(reqs)


async def plain_pysnmp_polls(address: tuple[str, int], community: str, n: int, lookup: bool) -> tuple[float, float]:
    """The peer: GET of the identity scalars plus bulk_walk_cmd of the two Printer-MIB tables."""
    from pysnmp.hlapi.v3arch.asyncio import (CommunityData, ContextData, ObjectIdentity, ObjectType,
                                             SnmpEngine, UdpTransportTarget, bulk_walk_cmd, get_cmd)
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(address, timeout=2, retries=1)
    auth = CommunityData(community)
    requests = 0

    async def once() -> None:
        nonlocal requests
        await get_cmd(engine, auth, target, ContextData(), *(ObjectType(ObjectIdentity(o)) for o in IDENTITY),
                      lookupMib=lookup)
        requests += 1
        for table in TABLES:
            async for err, status, index, binds in bulk_walk_cmd(
                    engine, auth, target, ContextData(), 0, 10, ObjectType(ObjectIdentity(table)),
                    lexicographicMode=False, lookupMib=lookup):
                requests += 1

    await once()
    cpu = []
    requests = 0
    for _ in range(n):
        c0 = time.process_time()
        await once()
        cpu.append(time.process_time() - c0)
    engine.close_dispatcher()
    return statistics.median(cpu) * 1000, requests / n


def netsnmp_polls(address: tuple[str, int], community: str, n: int) -> float:
    """The C baseline: snmpget + snmpbulkwalk of the tables, CPU of the child processes."""
    return netsnmp_same(address, community, IDENTITY, TABLES, n)[0]


def per_poll(sim: Simulator, polls: int) -> None:
    address = (sim.host, sim.port)
    print("\n== one printer poll (median of %d; CPU in this process; snmpsim runs elsewhere) ==" % polls)
    print(f"{'printer':<22}{'meterbox':>18}{'req':>5}{'plain pysnmp':>15}{'no MIB':>9}{'req':>5}"
          f"{'net-snmp':>10}{'snmp_exp.':>10}   ratios (P1: <=3x snmp_exporter, <=0.5x plain)")
    for community, label in PEERS.items():
        mb_cpu, mb_wall, mb_req = asyncio.run(meterbox_polls(address, community, polls))
        plain, plain_req = asyncio.run(plain_pysnmp_polls(address, community, polls, lookup=True))
        nolookup, _ = asyncio.run(plain_pysnmp_polls(address, community, polls, lookup=False))
        c = netsnmp_polls(address, community, max(polls // 5, 5))
        exp = SNMP_EXPORTER_MS[community]
        print(f"{label:<22}{mb_cpu:>7.1f} ms ({mb_wall:>4.1f} wall){mb_req:>5.0f}{plain:>12.1f} ms{nolookup:>6.1f} ms"
              f"{plain_req:>5.0f}{c:>7.1f} ms{exp:>7.1f} ms   {mb_cpu / exp:.1f}x exporter, "
              f"{mb_cpu / plain:.2f}x plain, {mb_cpu / nolookup:.2f}x no-MIB, {mb_cpu / c:.2f}x net-snmp")


def per_profile(sim: Simulator, polls: int) -> None:
    """Issue 3's figure: each vendor profile's poll against net-snmp reading the same OIDs."""
    from meterbox.printers.profiles import loader
    std = loader.standard()
    address = (sim.host, sim.port)
    print(f"\n== per profile (median of {polls}; net-snmp: snmpget of the same scalars + "
          f"snmpbulkwalk of the same columns, as processes) ==")
    print(f"{'profile':<16}{'recording':<26}{'first req':>10}{'req':>5}{'CPU':>9}{'net-snmp':>10}{'PDUs':>6}  ratio")
    for profile in loader.vendor_profiles():
        names = [r for r in profile.recordings if (ROOT / "tests" / "printers" / f"{r}.snmprec").exists()]
        polled = [(n, r) for n in names if (r := asyncio.run(_first_poll_requests(address, n)))]
        if not polled:
            continue
        name, first = polled[0]  # the first of its recordings that is a printer
        cpu, _, req = asyncio.run(meterbox_polls(address, name, polls))
        scalars = [std["identity"]["sys_object_id"], std["identity"]["sys_descr"], *std["identity"]["serial"],
                   *profile.scalar_oids()]
        roots = [*std.columns.values(), *profile.walk_roots()]
        c, pdus = netsnmp_same(address, name, scalars, roots, max(polls // 5, 3))
        print(f"{profile.name:<16}{name:<26}{first:>10}{req:>5.0f}{cpu:>6.1f} ms{c:>7.1f} ms{pdus:>6}  {cpu / c:.2f}x")


async def _first_poll_requests(address: tuple[str, int], community: str) -> int:
    """PDUs of a printer's first poll; 0 when the recording is not a printer (stubs, scanners)."""
    from meterbox.errors import MeterboxError
    client = SnmpClient()
    try:
        await read_printer(client, Target(address[0], address[1], Credential(community=Secret(community))), Hint())
    except MeterboxError:
        return 0
    finally:
        client.close()
    return client.requests


def netsnmp_same(address: tuple[str, int], community: str, scalars: list[str], roots: list[str],
                 n: int) -> tuple[float, int]:
    """CPU of net-snmp processes reading the same scalars and columns; and how many PDUs that takes."""
    agent = f"{address[0]}:{address[1]}"
    cpu = []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["snmpget", "-v2c", "-c", community, "-On", agent, *scalars], capture_output=True)
        for root in roots:
            subprocess.run(["snmpbulkwalk", "-v2c", "-c", community, "-On", "-Cr10", agent, root],
                           capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(cpu) * 1000, 1 + len(roots)


def proc_value(pid: int, path: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_run(n_printers: int, seconds: float, work: Path) -> None:
    # recordings with a Printer-MIB serial, so every simulated printer is reported
    with_serial = ["jetdirect_m130nw", "konica_c250i", "epson", "fujifilmprinter_c7580", "canonprinter_lbp"]
    port = free_udp_port()
    endpoints = [(f"127.0.{1 + i // 250}.{1 + i % 250}", port) for i in range(n_printers)]
    pki = Pki(work / "pki")
    interval = 5.0
    with Simulator(ROOT / "tests" / "printers", endpoints=endpoints) as sim, \
            Broker(pki, work_dir=work / "broker") as broker:
        box = BoxConfig(state_dir=work / "state", broker=broker, interval=f"{interval:g}s", timeout="2s",
                        printers=[PrinterEntry(a, with_serial[i % len(with_serial)])
                                  for i, a in enumerate(sim.addresses)])
        config = box.write(work / "meterbox.toml")
        started = time.monotonic()
        with Daemon(config, work) as daemon:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            daemon.wait_status(lambda s: any(p["last_ok"] for p in s["printers"]), timeout=30)
            first = time.monotonic() - started
            time.sleep(interval * 2)  # steady state: tables learned, sessions up
            io0, cpu0, t0 = proc_value(pid, "io", "write_bytes"), cpu_seconds(pid), time.monotonic()
            stored0 = sum(1 for _ in _sent_or_pending(config))
            time.sleep(seconds)
            io1, cpu1, t1 = proc_value(pid, "io", "write_bytes"), cpu_seconds(pid), time.monotonic()
            stored1 = sum(1 for _ in _sent_or_pending(config))
            rss_peak = proc_value(pid, "status", "VmHWM")
            rss_now = proc_value(pid, "status", "VmRSS")
    cycles = (t1 - t0) / interval
    readings = max(stored1 - stored0, 1)
    print(f"\n== daemon: {n_printers} printers every {interval:g}s for {seconds:g}s, real Mosquitto ==")
    print(f"start -> first reading stored: {first:.2f} s (P7 target: <= 2 s to first poll on the wire)")
    print(f"peak RSS {rss_peak / 1024:.1f} MiB, now {rss_now / 1024:.1f} MiB (P4: <= 60 MB for 250 printers)")
    print(f"CPU {(cpu1 - cpu0) / max(readings, 1) * 1000:.1f} ms per reading; "
          f"{(cpu1 - cpu0) / (t1 - t0) * 100:.1f} % of a core")
    print(f"disk writes {(io1 - io0) / cycles / 1024:.1f} KiB per poll cycle, "
          f"{(io1 - io0) / readings:.0f} B per reading over {readings} readings (P6: <= 2048 B)")


def _sent_or_pending(config: Path) -> list[object]:
    import sqlite3
    state = Path(next(line.split('"')[1] for line in config.read_text().splitlines()
                      if line.startswith("state_dir")))
    db = sqlite3.connect(f"file:{state / 'meterbox.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id FROM messages WHERE kind='reading'").fetchall()
    finally:
        db.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=50)
    p.add_argument("--printers", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--skip-daemon", action="store_true")
    p.add_argument("--profiles", action="store_true", help="also every vendor profile against net-snmp")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="meterbox-bench-") as tmp:
        with Simulator(ROOT / "tests" / "printers") as sim:
            per_poll(sim, args.polls)
            if args.profiles:
                per_profile(sim, args.polls)
        if not args.skip_daemon:
            daemon_run(args.printers, args.seconds, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
