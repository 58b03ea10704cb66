"""The peers bench/poll.py measures meterbox against, reading the same OIDs of the same printers.

- Prometheus' snmp_exporter (Debian's prometheus-snmp-exporter, Go, a long-running process):
  a snmp.yml written here with one module per printer that GETs the scalars meterbox reads and
  walks the columns it reads (and, as a second module, the tables holding those columns); its
  CPU comes from /proc/<pid>/stat over many scrapes, its PDUs from snmp_scrape_packets_sent.
- a plain pysnmp 7 asyncio poller: get_cmd of the scalars and bulk_walk_cmd of each column,
  max-repetitions 10, lookupMib=False (the cheaper of the two ways PERFORMANCE.md lists).
- net-snmp's snmpget + snmpbulkwalk as processes (CPU of the child processes).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

EXPORTER = "prometheus-snmp-exporter"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Plan:
    """What meterbox reads of one printer: the scalars it GETs and the columns it walks (and their rows)."""

    community: str
    scalars: list[str]
    columns: dict[str, list[str]]          # root -> row suffixes (to give the exporter its indexes)
    kinds: dict[str, str]                  # OID or root -> "int", "text" or "oid"

    def pdus(self, max_repetitions: int = 10) -> int:
        """PDUs a GET plus one GETBULK walk per column take: a walk ends on the first varbind past its column."""
        return 1 + sum(len(rows) // max_repetitions + 1 for rows in self.columns.values())

    def tables(self) -> list[str]:
        """The table entries that hold the columns (what a person would walk in snmp_exporter)."""
        return list(dict.fromkeys(root.rsplit(".", 1)[0] for root in self.columns))


def _metric(name: str, oid: str, kind: str, index_len: int) -> list[str]:
    lines = [f"  - name: {name}", f"    oid: {oid}", f"    type: {'gauge' if kind == 'int' else 'DisplayString'}",
             "    help: meterbox bench"]
    if index_len:
        lines.append("    indexes:")
        for i in range(index_len):
            lines += [f"    - labelname: {name}_i{i}", "      type: gauge"]
    return lines


def exporter_config(plans: list[Plan]) -> str:
    """snmp.yml (snmp_exporter 0.21 format): per printer a "<community>-columns" and a "<community>-tables" module."""
    out: list[str] = []
    for plan in plans:
        metrics: list[str] = []
        for i, oid in enumerate(plan.scalars):
            metrics += _metric(f"s{i}", oid.rsplit(".", 1)[0], plan.kinds.get(oid, "int"), 0)
        for i, (root, rows) in enumerate(plan.columns.items()):
            metrics += _metric(f"c{i}", root, plan.kinds.get(root, "int"), len(rows[0].split(".")) if rows else 1)
        for suffix, walk in (("columns", list(plan.columns)), ("tables", plan.tables())):
            out += [f"{plan.community}-{suffix}:", "  walk:", *(f"  - {w}" for w in walk), "  get:",
                    *(f"  - {s}" for s in plan.scalars), "  metrics:", *metrics, "  version: 2",
                    "  max_repetitions: 25", "  retries: 1", "  timeout: 2s", "  auth:",
                    f"    community: {plan.community}"]
    return "\n".join(out) + "\n"


class Exporter:
    """snmp_exporter as a process on 127.0.0.1; scrape(module, target) as Prometheus would."""

    def __init__(self, plans: list[Plan], work: Path, port: int) -> None:
        self.config = work / "snmp.yml"
        self.config.write_text(exporter_config(plans))
        self.port = port
        self.log = work / "snmp_exporter.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which(EXPORTER) is not None

    def __enter__(self) -> Exporter:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([EXPORTER, f"--config.file={self.config}", "--log.level=error",
                                          f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).read()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"snmp_exporter did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)

    def cpu(self) -> float:
        """CPU seconds the exporter has used (user + system), from /proc/<pid>/stat."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def scrape(self, module: str, target: str) -> tuple[str, int]:
        """The metrics text and the SNMP packets the scrape sent."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/snmp?module={module}&target={target}",
                                      timeout=10).read().decode()
        sent = re.search(r"^snmp_scrape_packets_sent (\d+)", text, re.M)
        if sent is None or "snmp_scrape_pdus_returned" not in text:
            raise RuntimeError(f"snmp_exporter scrape of {module} failed:\n{text[:2000]}")
        return text, int(sent.group(1))


async def plain_pysnmp(address: tuple[str, int], plan: Plan, n: int) -> tuple[list[float], int]:
    """CPU seconds of N polls by a plain pysnmp 7 poller of the same OIDs, and its PDUs per poll (Plan.pdus)."""
    from pysnmp.hlapi.v3arch.asyncio import (CommunityData, ContextData, ObjectIdentity, ObjectType,
                                             SnmpEngine, UdpTransportTarget, bulk_walk_cmd, get_cmd)
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(address, timeout=2, retries=1)
    auth = CommunityData(plan.community)

    async def once() -> None:
        await get_cmd(engine, auth, target, ContextData(), *(ObjectType(ObjectIdentity(o)) for o in plan.scalars),
                      lookupMib=False)
        for root in plan.columns:
            async for _ in bulk_walk_cmd(engine, auth, target, ContextData(), 0, 10, ObjectType(ObjectIdentity(root)),
                                         lexicographicMode=False, lookupMib=False):
                pass

    await once()
    cpu = []
    for _ in range(n):
        c0 = time.process_time()
        await once()
        cpu.append(time.process_time() - c0)
    engine.close_dispatcher()
    return cpu, plan.pdus()


def netsnmp(address: tuple[str, int], plan: Plan, n: int) -> tuple[list[float], int]:
    """CPU seconds of N polls by net-snmp processes (snmpget + one snmpbulkwalk -Cr10 per column); their PDUs."""
    agent = f"{address[0]}:{address[1]}"
    cpu = []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["snmpget", "-v2c", "-c", plan.community, "-On", agent, *plan.scalars], capture_output=True)
        for root in plan.columns:
            subprocess.run(["snmpbulkwalk", "-v2c", "-c", plan.community, "-On", "-Cr10", agent, root],
                           capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return cpu, plan.pdus()
