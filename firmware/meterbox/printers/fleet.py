"""The printers part: one poller per printer, the configured ones and those discovery finds.

Pollers start at random offsets and never stop each other. At most `concurrency` polls
run at once; printers that do not answer retry less and less often and share only a
quarter of those slots, so a floor of switched-off printers cannot starve the rest.
Discovery adds a poller per new serial; a known serial at a new address keeps its poller
(and its history).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from typing import Iterable

from meterbox.config import Config, PrinterTarget
from meterbox.errors import StoreError
from meterbox.printers.discovery import Discovery
from meterbox.printers.found import Found
from meterbox.printers.poller import Context, Poller
from meterbox.printers.snmp import SnmpClient, Target

log = logging.getLogger(__name__)

LOST_PRINTER_SWEEP = 600.0  # a found printer stopped answering (DHCP?): sweep again this soon
RETRY_CAP = 300.0           # a printer that does not answer is tried at least this often


def target_of(p: PrinterTarget, cfg: Config) -> Target:
    return Target(p.host, p.port, p.credential, timeout=cfg.poll.timeout, retries=cfg.poll.retries)


class Fleet:
    """All pollers and their tasks; `run()` polls until cancelled."""

    def __init__(self, cfg: Config, ctx: Context) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.pollers = [Poller(ctx, target_of(p, cfg)) for p in cfg.printers]
        slots = max(cfg.poll.concurrency, 1)
        self._gate = asyncio.Semaphore(slots)
        self._retry_gate = asyncio.Semaphore(max(slots // 4, 1))   # for printers that do not answer
        self._tasks: dict[Poller, asyncio.Task[None]] = {}
        self._found: dict[str, Poller] = {}                        # serial -> poller of a found printer
        self._sweep_asked = asyncio.Event()
        self._sweeps = 0

    # --- what others may ask -------------------------------------------------------
    @property
    def swept(self) -> bool:
        """A sweep has finished (or discovery is off): "no printers" is a verdict, not a guess."""
        return self._sweeps > 0 or not self.discovery_enabled()

    def polled(self) -> int:
        """Pollers that have had their first poll."""
        return sum(1 for p in self.pollers if p.healthy is not None)

    def counts(self) -> tuple[int, int]:
        """(printers answering, of those reported): for the heartbeat and status lines."""
        serials = {p.serial for p in self.pollers if p.serial and p.healthy}
        return len(serials), sum(1 for s in serials if self.ctx.enrolled(s))

    def discovery_enabled(self) -> bool:
        """[discovery] enabled, or by default: on when no [[printers]] are listed."""
        enabled = self.cfg.discovery.enabled
        return not self.cfg.printers if enabled is None else enabled

    def discover_now(self) -> None:
        """On demand (SIGUSR1): sweep at once, or right after the sweep that is running."""
        self._sweep_asked.set()

    # --- running -------------------------------------------------------------------
    async def run(self) -> None:
        for poller in self.pollers:
            self._start(poller)
        discovery = asyncio.create_task(self._discovery_loop(), name="discovery") \
            if self.discovery_enabled() else None
        try:
            await asyncio.Event().wait()
        finally:
            tasks = list(self._tasks.values()) + ([discovery] if discovery else [])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, poller: Poller) -> None:
        self._tasks[poller] = asyncio.create_task(self._poll_loop(poller), name=f"poll {poller.target.address}")

    async def _poll_loop(self, poller: Poller) -> None:
        await asyncio.sleep(random.uniform(0, min(self.ctx.interval, 1.0)))  # spread the first polls
        while True:
            started = time.monotonic()
            async with contextlib.AsyncExitStack() as slots:
                if poller.healthy is False:
                    await slots.enter_async_context(self._retry_gate)
                await slots.enter_async_context(self._gate)
                try:
                    await poller.poll_once()
                except StoreError as err:
                    log.error("%s", err)
                except Exception:  # one printer's surprise must not stop the others
                    log.exception("printer at %s: unexpected error while polling; will retry",
                                  poller.target.address)
            delay = poller.next_delay(RETRY_CAP)
            await asyncio.sleep(max(delay - (time.monotonic() - started), 0.0))

    # --- discovery: printers found by serial get pollers (discovery.py) ---------------
    async def _discovery_loop(self) -> None:
        client = SnmpClient()
        finder = Discovery(client, self.cfg.credentials, self.cfg.discovery, poll_timeout=self.cfg.poll.timeout)
        try:
            while True:
                self._sweep_asked.clear()
                try:
                    await self.adopt((await finder.sweep()).printers)
                    self._sweeps += 1
                except StoreError as err:
                    log.error("%s", err)
                except Exception:  # a surprise in one sweep must not end discovery
                    log.exception("discovery: unexpected error during the sweep; will sweep again")
                lost = any(p.healthy is False for p in self._found.values())
                interval = self.cfg.discovery.interval
                wait = min(interval, LOST_PRINTER_SWEEP) if lost else interval
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._sweep_asked.wait(), wait)
        finally:
            client.close()

    async def adopt(self, found: Iterable[Found]) -> None:
        """One poller per serial: a known serial at a new address keeps its poller (its history
        goes on); a new serial gets a new poller, even at the address of a printer now gone."""
        found = [f for f in found if self._wanted(f)]
        for item in found:
            if item.serial in self._found:
                await self._move(self._found[item.serial], item)
            else:
                self._add(item)
        present = {item.serial for item in found}
        for item in found:
            for serial, poller in list(self._found.items()):
                if serial not in present and (poller.target.host, poller.target.port) == (item.host, item.port):
                    log.info("printer at %s is now %s (was %s): a different printer; %s keeps its history",
                             item.address, item.serial, serial, serial)
                    self._retire(serial)

    def _wanted(self, item: Found) -> bool:
        """Printers listed under [[printers]] are polled as listed; printers without serial cannot be followed."""
        if item.serial is None:
            log.debug("printer at %s reports no serial number: not polled (list it under [[printers]] "
                      "to see it in `meterbox status`)", item.address)
            return False
        found = set(self._found.values())
        listed = [p for p in self.pollers if p not in found]
        return not any(p.serial == item.serial or (p.target.host, p.target.port) == (item.host, item.port)
                       for p in listed)

    def _add(self, item: Found) -> None:
        target = Target(item.host, item.port, item.credential, timeout=self.cfg.poll.timeout,
                        retries=self.cfg.poll.retries)
        poller = Poller(self.ctx, target)
        poller.serial = item.serial
        self.pollers.append(poller)
        self._found[item.serial or ""] = poller
        self._start(poller)
        log.info("found printer %s (%s %s) at %s, %s", item.serial, item.device.manufacturer or "?",
                 item.device.model or "?", item.address, item.credential.describe(),
                 extra={"METERBOX_SERIAL": item.serial, "METERBOX_EVENT": "printer-found"})

    async def _move(self, poller: Poller, item: Found) -> None:
        old = poller.target
        if (old.host, old.port, old.credential) == (item.host, item.port, item.credential):
            return
        poller.target = dataclasses.replace(old, host=item.host, port=item.port, credential=item.credential)
        if (old.host, old.port) != (item.host, item.port):
            log.info("printer %s moved from %s to %s; same printer, its history goes on",
                     item.serial, old.address, poller.target.address, extra={"METERBOX_SERIAL": item.serial})
            await self.ctx.history.forget(old.address)

    def _retire(self, serial: str) -> None:
        poller = self._found.pop(serial)
        self._tasks.pop(poller).cancel()
        self.pollers.remove(poller)
