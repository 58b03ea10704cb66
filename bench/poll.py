"""Benchmark: cost of one printer poll beside its peers, and of the daemon polling many printers.

Run:  .venv/bin/python bench/poll.py [--cycles 2] [--printers 50] [--seconds 40]

Prints, for the printers PERFORMANCE.md names (HP M130nw, Ricoh MP C2503, Brother
HL-L8260CDW), served by snmpsim on loopback, measured in the same run and interleaved:
- meterbox's poll (the daemon's code, one SnmpClient kept alive): CPU per poll averaged over
  the whole re-walk cycle (columns.FULL_WALK polls: GETs, every 12th a walk of the changing
  columns, one full walk), the steady-state poll alone, and PDUs per poll;
- Prometheus' snmp_exporter (Debian's prometheus-snmp-exporter) reading the same OIDs, its
  CPU from /proc over as many scrapes; the cheaper of walking the same columns or their tables;
- a plain pysnmp poller and net-snmp processes reading the same OIDs (bench/peers.py);
- with --profiles, every vendor profile against net-snmp reading the same OIDs;
- the daemon (`meterbox run`) polling N simulated printers, with a real Mosquitto: peak RSS,
  CPU per poll, bytes written to disk per poll cycle and per reading (/proc/PID/io), and the
  time from process start to the first reading stored.
These machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from meterbox.config import Credential, Secret  # noqa: E402
from meterbox.printers.columns import FULL_WALK  # noqa: E402
from meterbox.printers.poll import Hint, identity_oids, read_printer, static_roots, walk_roots  # noqa: E402
from meterbox.printers.snmp import SnmpClient, Target  # noqa: E402
from peers import Exporter, Plan, netsnmp, plain_pysnmp  # noqa: E402
from support.broker import Broker  # noqa: E402
from support.daemon import BoxConfig, Daemon, PrinterEntry  # noqa: E402
from support.pki import Pki  # noqa: E402
from support.process import free_tcp_port, free_udp_port  # noqa: E402
from support.snmpsim import Simulator  # noqa: E402

PEERS = {"jetdirect_m130nw": "HP M130nw", "ricoh_mpc2503": "Ricoh MP C2503",
         "brother_hl-l8260cdw": "Brother HL-L8260CDW"}
ROUNDS = 4   # rounds per cycle: meterbox, the exporter and the plain poller take turns this often


def _kind(value: object) -> str:
    return "int" if isinstance(value, int) else "text"


async def learn(address: tuple[str, int], community: str) -> tuple[SnmpClient, Target, Hint, Plan, int]:
    """A printer's first poll, as the daemon does it; and what meterbox reads of it from then on."""
    client = SnmpClient()
    target = Target(address[0], address[1], Credential(community=Secret(community)), timeout=2.0)
    hint = Hint()
    await read_printer(client, target, hint)
    first = client.requests
    scalars = identity_oids() + (hint.profile.scalar_oids(hint.hr_roles) if hint.profile else [])
    roots = walk_roots(hint.profile, hint.has_pwg)
    probe = SnmpClient()   # a client of its own: the poller's remembered rows stay as they are
    values, columns = await probe.read(target, scalars, roots, static_roots(hint.profile))
    probe.close()
    kinds = {o: _kind(v) for o, v in values.items()}
    kinds.update({r: _kind(next(iter(c.values()))) for r, c in columns.items() if c})
    return client, target, hint, Plan(community, scalars, {r: list(c) for r, c in columns.items()}, kinds), first


class Tally:
    """One printer's figures over the run."""

    def __init__(self) -> None:
        self.mb_cpu: list[float] = []
        self.mb_pdus: list[int] = []
        self.exp_cpu: dict[str, float] = {"columns": 0.0, "tables": 0.0}
        self.exp_scrapes: dict[str, int] = {"columns": 0, "tables": 0}
        self.exp_pdus: dict[str, int] = {}
        self.plain: list[float] = []
        self.plain_pdus = 0
        self.netsnmp: list[float] = []
        self.netsnmp_pdus = 0


async def compare(sim: Simulator, cycles: int, work: Path) -> None:
    address = (sim.host, sim.port)
    learned = {name: await learn(address, name) for name in PEERS}
    per_round = FULL_WALK // ROUNDS
    tallies = {name: Tally() for name in PEERS}
    with Exporter([p for _, _, _, p, _ in learned.values()], work, free_tcp_port()) as exporter:
        for name in PEERS:                                  # warm up: connections, caches
            for module in ("columns", "tables"):
                for _ in range(5):
                    exporter.scrape(f"{name}-{module}", sim.address)
        for _ in range(cycles * ROUNDS):
            for name, (client, target, hint, plan, _) in learned.items():
                t = tallies[name]
                for _ in range(per_round):
                    c0, r0 = time.process_time(), client.requests
                    await read_printer(client, target, hint)
                    t.mb_cpu.append(time.process_time() - c0)
                    t.mb_pdus.append(client.requests - r0)
                for module in ("columns", "tables"):
                    c0 = exporter.cpu()
                    for _ in range(per_round):
                        _, sent = exporter.scrape(f"{name}-{module}", sim.address)
                    t.exp_cpu[module] += exporter.cpu() - c0
                    t.exp_scrapes[module] += per_round
                    t.exp_pdus[module] = sent
                cpu, t.plain_pdus = await plain_pysnmp(address, plan, 2)
                t.plain += cpu
        for name, (_, _, _, plan, _) in learned.items():
            tallies[name].netsnmp, tallies[name].netsnmp_pdus = netsnmp(address, plan, 3)
    for client, *_ in learned.values():
        client.close()
    report(learned, tallies, cycles)


def report(learned: dict[str, tuple[SnmpClient, Target, Hint, Plan, int]], tallies: dict[str, Tally],
           cycles: int) -> None:
    print(f"\n== one printer poll: meterbox over {cycles} full re-walk cycle(s) of {FULL_WALK} polls, "
          f"interleaved with the peers reading the same OIDs (CPU ms per poll) ==")
    print(f"{'printer':<21}{'meterbox':>9}{'steady':>8}{'PDUs':>12}{'exporter':>10}{'PDUs':>5}{'ratio':>7}"
          f"{'pysnmp':>9}{'PDUs':>5}{'ratio':>7}{'net-snmp':>10}")
    ratios = []
    for name, label in PEERS.items():
        t, first = tallies[name], learned[name][4]
        cycle = sum(t.mb_cpu) / len(t.mb_cpu) * 1000
        steady = statistics.median(c for c, n in zip(t.mb_cpu, t.mb_pdus) if n == 1) * 1000
        module = min(t.exp_cpu, key=lambda m: t.exp_cpu[m] / t.exp_scrapes[m])
        exp = t.exp_cpu[module] / t.exp_scrapes[module] * 1000
        plain = statistics.median(t.plain) * 1000
        ratios.append(cycle / exp)
        pdus = f"1/{sum(t.mb_pdus) / len(t.mb_pdus):.2f}/{first}"
        print(f"{label:<21}{cycle:>9.2f}{steady:>8.2f}{pdus:>12}{exp:>10.2f}{t.exp_pdus[module]:>5}"
              f"{cycle / exp:>6.2f}x{plain:>9.1f}{t.plain_pdus:>5}{cycle / plain:>6.2f}x"
              f"{statistics.median(t.netsnmp) * 1000:>10.1f}")
    print("meterbox: CPU averaged over the cycle; steady: the median one-GET poll; PDUs: steady / cycle average / "
          "first poll.\nexporter: the cheaper of its two modules (same columns walked, or their tables: "
          + ", ".join(f"{PEERS[n]} {min(t.exp_cpu, key=lambda m: t.exp_cpu[m] / t.exp_scrapes[m])}"
                      for n, t in tallies.items()) + "), CPU from /proc over the same number of scrapes.")
    print(f"P1 (<= 2x snmp_exporter on every printer): {'met' if max(ratios) <= 2 else 'NOT met'} "
          f"({min(ratios):.2f}x-{max(ratios):.2f}x)")


def per_profile(sim: Simulator, polls: int) -> None:
    """Each vendor profile's poll against net-snmp reading the same OIDs."""
    from meterbox.printers.profiles import loader
    address = (sim.host, sim.port)
    print(f"\n== per profile (median of {polls}; net-snmp: snmpget of the same scalars + "
          f"snmpbulkwalk of the same columns, as processes) ==")
    print(f"{'profile':<16}{'recording':<26}{'first req':>10}{'req':>5}{'CPU':>9}{'net-snmp':>10}{'PDUs':>6}  ratio")
    for profile in loader.vendor_profiles():
        names = [r for r in profile.recordings if (ROOT / "tests" / "printers" / f"{r}.snmprec").exists()]
        for name in names:
            try:
                cpu, req, first, plan = asyncio.run(_profile_polls(address, name, polls))
            except Exception:  # noqa: BLE001 -- a recording that is no printer (stubs, scanners)
                continue
            c, pdus = netsnmp(address, plan, max(polls // 5, 3))
            c_ms = statistics.median(c) * 1000
            print(f"{profile.name:<16}{name:<26}{first:>10}{req:>5.0f}{cpu:>6.1f} ms{c_ms:>7.1f} ms{pdus:>6}  "
                  f"{cpu / c_ms:.2f}x")
            break


async def _profile_polls(address: tuple[str, int], name: str, polls: int) -> tuple[float, float, int, Plan]:
    client, target, hint, plan, first = await learn(address, name)
    cpu, reqs = [], []
    for _ in range(polls):
        c0, r0 = time.process_time(), client.requests
        await read_printer(client, target, hint)
        cpu.append(time.process_time() - c0)
        reqs.append(client.requests - r0)
    client.close()
    return statistics.median(cpu) * 1000, statistics.median(reqs), first, plan


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
    p.add_argument("--cycles", type=int, default=2, help=f"full re-walk cycles ({FULL_WALK} polls) per printer")
    p.add_argument("--polls", type=int, default=50, help="polls per profile with --profiles")
    p.add_argument("--printers", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--skip-daemon", action="store_true")
    p.add_argument("--profiles", action="store_true", help="also every vendor profile against net-snmp")
    args = p.parse_args()
    if not Exporter.available():
        print("prometheus-snmp-exporter is not installed (apt-get install prometheus-snmp-exporter): "
              "the peer must be measured in the same run", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="meterbox-bench-") as tmp:
        with Simulator(ROOT / "tests" / "printers") as sim:
            asyncio.run(compare(sim, args.cycles, Path(tmp)))
            if args.profiles:
                per_profile(sim, args.polls)
        if not args.skip_daemon:
            daemon_run(args.printers, args.seconds, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
