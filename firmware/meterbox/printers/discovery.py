"""Discovery: find every printer on the office network, with zero configuration.

Where to look: the subnets of the box's own interfaces (one larger than max_prefix is
cut to the block around the box), the ranges and hosts from the config, and the
addresses printers announce over mDNS. How: one cheap GET per address and credential
(sysObjectID, prtGeneralSerialNumber, hrDeviceType.1), paced by a token bucket and
bounded in concurrency, 1 s timeout and one retry, so a /24 of silent addresses costs
about two timeouts. Whoever answers is identified with a full poll (poll.read_printer),
which also decides whether it is a printer. A printer is known by its serial number:
two addresses with one serial are one printer.

Why every community goes out at once: a v1/v2c agent silently drops a wrong
community, so "wrong community" and "nobody there" look the same; trying them one
after another would cost a timeout per community on every silent address. SNMPv3
users are tried one after another, because a v3 agent answers a wrong user or key
with a report, which is quick.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from meterbox.config import AddressRange, Credential, DiscoveryConfig
from meterbox.errors import (
    MeterboxError,
    NotAPrinter,
    PrinterUnreachable,
    SnmpAuthError,
    SnmpError,
)
from meterbox.logs import plural
from meterbox.printers import netif
from meterbox.printers.found import Found, SweepResult, address_text, merge, say_once
from meterbox.printers.pacing import TokenBucket
from meterbox.printers.poll import read_printer
from meterbox.printers.snmp import Prober, SnmpClient, Target

log = logging.getLogger(__name__)

#: sysObjectID, prtGeneralSerialNumber.1, hrDeviceType.1: small, and any agent answers it.
PROBE_OIDS = ("1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.43.5.1.1.17.1", "1.3.6.1.2.1.25.3.2.1.2.1")
PROBE_TIMEOUT = 1.0
PROBE_RETRIES = 1
MDNS_WINDOW = 2.0          # seconds announcements are awaited; they arrive while the sweep runs
DEFAULT_CREDENTIALS = (Credential(),)   # v2c "public", what printers ship with

Progress = Callable[[int, int, int], None]     # (addresses done, addresses planned, printers found)
Key = tuple[str, int]                           # (host, port)


# ---------------------------------------------------------------------------- where to look

class _Sweep:
    """One run: probes, identifies and collects; built fresh by Discovery.sweep each time."""

    def __init__(self, owner: Discovery, own: set[str]) -> None:
        self.d = owner
        self.own = own
        self.bucket = TokenBucket(owner.cfg.rate)
        self.prober = Prober()
        self.gate = asyncio.Semaphore(owner.cfg.concurrency)
        self.planned: dict[Key, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.queue: collections.deque[tuple[str, int, str]] = collections.deque()
        self.found: list[Found] = []
        self.result = SweepResult(printers=[])
        self.done = 0

    # ---- scheduling
    def add(self, host: str, port: int, via: str) -> None:
        """Probe HOST:PORT once per sweep (the box itself never)."""
        key = (host, port)
        if host in self.own and host not in self.result.own:
            self.result.own.append(host)
        if key in self.planned or host in self.own:
            return
        self.planned[key] = via
        self.queue.append((host, port, via))
        while len(self.tasks) < self.d.cfg.concurrency and len(self.tasks) < len(self.queue):
            task = asyncio.create_task(self._work(), name="discover")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _work(self) -> None:
        """A worker of the pool: a task per address would cost ~100 MB for a /16 on a Pi."""
        while self.queue:
            await self._examine(*self.queue.popleft())

    def announced(self, address: str, name: str) -> None:
        """mDNS named an address: check it like any other (unless the sweep already does)."""
        self.add(address, 161, f"mDNS {name}")

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.prober.close()

    def problem(self, message: str) -> None:
        """Something a person must fix: a warning the first time, later sweeps only at DEBUG."""
        self.result.problems.append(message)
        say_once(message, logging.WARNING)

    # ---- one address
    async def _examine(self, host: str, port: int, via: str) -> None:
        """Probe, then identify; a surprise at one address never stops the sweep."""
        try:
            async with self.gate:
                credential = await self._probe(host, port)
                if credential is not None:
                    self.result.answered += 1
                    await self._identify(host, port, credential, via)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("device at %s: unexpected error while checking it; skipped",
                          address_text(host, port))
        finally:
            self.done += 1
            if self.d.progress:
                self.d.progress(self.done, len(self.planned), len({f.serial or f.host for f in self.found}))

    async def _probe(self, host: str, port: int) -> Credential | None:
        """The first credential, in configured order, that the device answers."""
        refused: list[str] = []
        chains = _chains(self.d.credentials)
        tasks = [asyncio.create_task(self._chain(host, port, chain, refused)) for chain in chains]
        try:
            for task in tasks:
                if (credential := await task) is not None:
                    return credential
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if refused:     # only worth saying when nothing else worked
            self.problem(f"device at {address_text(host, port)} answers SNMPv3 but not {'; nor '.join(refused)}: "
                         "check the user name, auth_key and priv_key and their protocols under [[credentials]]")
        return None

    async def _chain(self, host: str, port: int, chain: Sequence[Credential],
                     refused: list[str]) -> Credential | None:
        """A community alone; or, once an SNMPv3 agent is known to be there, each v3 user in turn."""
        if chain[0].version != "3":
            return chain[0] if await self._ask(host, port, chain[0]) else None
        if not await self._ask(host, port, None):
            return None
        for credential in chain:
            await self.bucket.take()
            target = Target(host, port, credential, timeout=self.d.poll_timeout, retries=0)
            try:
                await self.d.client.get(target, PROBE_OIDS)
                return credential
            except SnmpAuthError as err:
                reason = re.search(r"rejected \(([^)]*)\)", str(err))
                refused.append(f"{credential.describe()}: refused" + (f" ({reason[1]})" if reason else ""))
            except PrinterUnreachable:
                refused.append(f"{credential.describe()}: no answer (a wrong priv_key or priv_protocol looks like this)")
            except SnmpError as err:
                log.debug("device at %s: %s", address_text(host, port), err)
                return None
        return None

    async def _ask(self, host: str, port: int, credential: Credential | None) -> bool:
        """One probe (a v1/v2c GET, or a v3 engine discovery for None), retried; each packet paced."""
        timeout = self.d.probe_timeout
        for _ in range(1 + PROBE_RETRIES):
            await self.bucket.take()
            if credential is None:
                if await self.prober.v3_engine(host, port, timeout) is not None:
                    return True
            elif await self.prober.get(host, port, credential, PROBE_OIDS, timeout) is not None:
                return True
        return False

    async def _identify(self, host: str, port: int, credential: Credential, via: str) -> None:
        """A full poll names the printer and proves it is one (Printer-MIB or hrDevicePrinter)."""
        address = address_text(host, port)
        target = Target(host, port, credential, timeout=self.d.poll_timeout, retries=1)
        try:
            result = await read_printer(self.d.client, target, strict=True)
        except NotAPrinter:
            self.result.others.append(address)
            log.debug("device at %s answers SNMP but is not a printer; ignored", address)
            return
        except MeterboxError as err:
            self.problem(str(err))
            return
        self.found.append(Found(host, port, credential, result, via))
        device = result.device
        log.debug("printer %s (%s %s) at %s, %s, via %s", device.serial or "without serial",
                  device.manufacturer, device.model, address, credential.describe(), via)

    def finish(self, seconds: float) -> SweepResult:
        result = self.result
        result.printers = merge(self.found)
        result.addresses = len(self.planned)
        result.packets = self.bucket.taken
        result.seconds = seconds
        return result


def _chains(credentials: Sequence[Credential]) -> list[list[Credential]]:
    """Each community on its own (sent at once); all v3 users as one chain at the first one's place."""
    chains: list[list[Credential]] = []
    users: list[Credential] = []
    for credential in credentials:
        if credential.version != "3":
            chains.append([credential])
        elif not users:
            users.append(credential)
            chains.append(users)
        else:
            users.append(credential)
    return chains


class Discovery:
    """Sweeps for printers; the daemon keeps one, `meterbox discover` makes one per run."""

    def __init__(self, client: SnmpClient, credentials: Sequence[Credential] = (),
                 cfg: DiscoveryConfig | None = None, *, poll_timeout: float = 2.0,
                 probe_timeout: float = PROBE_TIMEOUT, progress: Progress | None = None,
                 interfaces: Callable[[], list[netif.Interface]] = netif.interfaces) -> None:
        self.client = client
        self.credentials = tuple(credentials) or DEFAULT_CREDENTIALS
        self.cfg = cfg or DiscoveryConfig()
        self.poll_timeout = poll_timeout
        self.probe_timeout = probe_timeout
        self.progress = progress
        self.interfaces = interfaces

    async def sweep(self, ranges: Iterable[AddressRange] | None = None,
                    hosts: Iterable[tuple[str, int]] | None = None, *,
                    own_subnets: bool = True, mdns: bool | None = None) -> SweepResult:
        """Sweep the own subnets, RANGES and HOSTS (default: the config's), and mDNS announcements."""
        started = time.monotonic()
        blocks, own, notes = self._subnets() if own_subnets else ([], self._own(), [])
        for note in notes:
            say_once(note)
        run = _Sweep(self, own)
        browser = await self._mdns(run) if (self.cfg.mdns if mdns is None else mdns) else None
        try:
            self._plan(run, blocks, self.cfg.ranges if ranges is None else ranges)
            await self._hosts(run, self.cfg.hosts if hosts is None else hosts)
            log.info("sweeping %d addresses%s with %s", len(run.planned),
                     " and listening for mDNS" if browser else "",
                     ", then ".join(c.describe() for c in self.credentials))
            await run.drain()
            if browser is not None:
                await asyncio.sleep(max(0.0, MDNS_WINDOW - (time.monotonic() - started)))
                await browser.close()
                browser = None
                await run.drain()
        finally:
            run.cancel()
            if browser is not None:
                await browser.close()
        return self._summary(run.finish(time.monotonic() - started))

    def _subnets(self) -> tuple[list[tuple[str, ipaddress.IPv4Network]], set[str], list[str]]:
        try:
            found = self.interfaces()
        except OSError as err:
            return [], set(), [f"cannot list the network interfaces ({err}); only ranges and hosts are swept"]
        blocks, own, notes = netif.own_subnets(found, self.cfg.max_prefix)
        if not blocks:
            notes.append("no network interface has an IPv4 subnet to sweep; check the cable and DHCP, "
                         "or list ranges under [discovery]")
        return blocks, own, notes

    def _own(self) -> set[str]:
        try:
            return {str(a.ip) for i in self.interfaces() for a in i.addresses}
        except OSError:
            return set()

    @staticmethod
    def _plan(run: _Sweep, blocks: Sequence[tuple[str, ipaddress.IPv4Network]],
              ranges: Iterable[AddressRange]) -> None:
        for name, net in blocks:
            for address in net.hosts():
                run.add(str(address), 161, f"subnet {name}")
        for block in ranges:
            for one in block.addresses():
                run.add(str(one), 161, f"range {block}")

    async def _hosts(self, run: _Sweep, hosts: Iterable[tuple[str, int]]) -> None:
        """Named hosts are resolved first, so one printer is one address; a bad name is reported."""
        loop = asyncio.get_running_loop()
        for host, port in hosts:
            try:
                ipaddress.ip_address(host)
                run.add(host, port, "host")
                continue
            except ValueError:
                pass
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            except OSError as err:
                run.problem(f"host {host}: cannot resolve the name ({err.strerror or err}); "
                            "check it under [discovery] hosts, or give its address")
                continue
            run.add(str(infos[0][4][0]), port, f"host {host}")

    @staticmethod
    async def _mdns(run: _Sweep) -> Any:
        # zeroconf costs import time: only when used
        from meterbox.printers.mdns import MdnsBrowser

        browser = MdnsBrowser(run.announced)
        return browser if await browser.start() else None

    @staticmethod
    def _summary(result: SweepResult) -> SweepResult:
        log.info("sweep of %s took %.1f s: %s, %s ignored, %s; %s%s", plural(result.addresses, "address", "addresses"),
                 result.seconds, plural(len(result.printers), "printer"),
                 plural(len(result.others), "other SNMP device"), plural(len(result.problems), "problem"),
                 plural(result.packets, "probe packet"),
                 f"; the box's own address {', '.join(result.own)} was not probed" if result.own else "")
        return result
