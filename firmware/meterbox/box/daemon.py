"""The daemon: one poller per printer, the store first, the uplink last.

Pollers start at random offsets and never stop each other; a reading is committed to
the store before anything else sees it; the pump moves outbox rows to the uplink in
a bounded window and marks them sent only on PUBACK.
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import dataclasses
import logging
import random
import time
from typing import Callable, Iterable

from meterbox.outbox.clock import CallableClock, Clock, system_clock
from meterbox.outbox.compact import compact
from meterbox.config import Config, PrinterTarget
from meterbox.printers.discovery import Discovery, Found
from meterbox.errors import MeterboxError, StoreError
from meterbox.printers.poll import Hint, read_printer
from meterbox import __version__
from meterbox.printers.reading import Device, Meter, Reading
from meterbox.printers.snmp import SnmpClient, Target
from meterbox.outbox.store import open_store
from meterbox.uplink.mqtt import Uplink
from meterbox.printers.validate import Validator

log = logging.getLogger(__name__)

PUMP_INTERVAL = 1.0  # the pump is woken by commits, PUBACKs and connects; this only catches `meterbox pause`
STORE_FLUSH = 0.5  # readings of one poll round are committed together (group commit)
LOST_PRINTER_SWEEP = 600.0  # a found printer stopped answering (DHCP?): sweep again this soon
ACK_FLUSH = 1.0  # PUBACKs are committed in batches: fewer writes; a crash only causes a resend (same id)
CLOCK_HOLD = 3600.0  # readings wait this long for a clock sync before they are sent marked "unsynced"
MEMORY_LIMIT = 10_000  # readings kept in memory while the store cannot be written


NOT_ENROLLED = "not enrolled: shown here only, nothing about it is sent (see [enroll] in the config)"


class Poller:
    """Polls one configured address; logs changes of health, not every failure."""

    def __init__(self, daemon: "Daemon", target: Target) -> None:
        self.daemon = daemon
        self.target = target
        self.hint = Hint()
        self.healthy: bool | None = None
        self.serial: str | None = None
        self.polls = 0

    async def poll_once(self) -> None:
        d = self.daemon
        synced = d.timekeeper.synced()  # before the read: a sync during it must not vouch for its time
        try:
            result = await read_printer(d.snmp, self.target, self.hint, clock=d.clock)
        except MeterboxError as err:
            if self.healthy is not False:
                log.warning("printer at %s: %s; will retry every %s", self.target.address,
                            _first_clause(err), _human(d.cfg.poll.interval), extra={"PRINTER_ADDRESS": self.target.address})
                log.debug("printer at %s: %s", self.target.address, err)
            self.healthy = False
            d.store.printer_polled(self.target.address, None, str(err))
            return
        device, reading = result.device, result.reading
        if not device.serial:
            if self.healthy is not False:
                log.warning("printer at %s (%s %s) reports no serial number; it is shown in "
                            "`meterbox status` but not reported", self.target.address,
                            device.manufacturer or "?", device.model or "?")
            self.healthy = False
            d.store.printer_polled(self.target.address, None, "no serial number")
            return
        if self.serial and device.serial != self.serial:
            log.warning("printer at %s is now serial %s (was %s): a different printer; "
                        "its history starts anew", self.target.address, device.serial, self.serial)
        elif self.healthy is False:
            log.info("printer %s at %s reachable again", device.serial, self.target.address)
        elif self.healthy is None:
            log.info("printer %s (%s %s) at %s: %d meters, %d supplies", device.serial,
                     device.manufacturer or "?", device.model or "?", self.target.address,
                     len(reading.meters), len(reading.supplies), extra={"PRINTER_SERIAL": device.serial})
        self.healthy = True
        if not d.validator.knows(device.serial):  # after a restart: continue from the stored history
            d.validator.seed(device.serial, (Meter(m["name"], m["value"], m["unit"])
                                             for m in d.store.last_meters(device.serial)))
        self.serial = device.serial
        self.polls += 1
        reading.meters, _ = d.validator.check(device.serial, reading.meters)
        d.note_meter_events()
        d.stamp(reading, synced)
        if not d.cfg.enroll.allows(device.serial):
            # The office did not enroll it: shown locally, and nothing about it leaves the box.
            d.store.printer_polled(self.target.address, device.serial, NOT_ENROLLED)
            return
        d.to_store.append((device, reading))
        d.store.printer_polled(self.target.address, device.serial, None)


def _first_clause(err: Exception) -> str:
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("printer at ") and ": " in text else text


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def target_of(p: PrinterTarget, cfg: Config) -> Target:
    return Target(p.host, p.port, p.credential, timeout=cfg.poll.timeout, retries=cfg.poll.retries)


class Daemon:
    """Everything `meterbox run` does, startable and stoppable from tests."""

    def __init__(self, cfg: Config, clock: Clock | Callable[[], float] | None = None) -> None:
        self.cfg = cfg
        self.timekeeper = clock if isinstance(clock, Clock) else (
            CallableClock(clock) if clock is not None else system_clock())
        self.clock: Callable[[], float] = self.timekeeper.now
        self.store = open_store(cfg.state_dir / "meterbox.db")
        self.store_error: str | None = None   # the store's current write failure, logged once
        self._fresh_after: int | None = None  # last seq stored when the uplink (re)connected
        self._connections = 0
        self._held = True                     # there may be readings waiting for a clock sync
        self._settled = 0.0
        self._wake = asyncio.Event()
        self.snmp = SnmpClient()
        self.uplink = Uplink(cfg.uplink, cfg.box_id, on_ack=self._wake.set,
                             on_state=self._uplink_error) if cfg.uplink.host else None
        self.pollers = [Poller(self, target_of(p, cfg)) for p in cfg.printers]
        self.readings_stored = 0
        self.to_store: list[tuple[Device, Reading]] = []
        self.validator = Validator()
        self._held_text: str | None = self.store.state("meters_held")
        self._last_uplink_error: str | None = None
        self._acked: list[str] = []
        self._flushed = time.monotonic()
        self._gate = asyncio.Semaphore(max(cfg.poll.concurrency, 1))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and upload until STOP is set."""
        if self.uplink:
            if self.store.state("paused") == "1":
                self.uplink.pause()
                log.info("uploads are paused (since %s); `meterbox resume` turns them back on",
                         self.store.state("paused_at") or "earlier")
        log.info("meterbox %s polling %d printers every %s; %d readings waiting to be sent",
                 self.cfg.box_id, len(self.pollers), _human(self.cfg.poll.interval), self.store.backlog())
        if not self.timekeeper.synced():
            log.warning("the clock is not synchronised yet: readings are held until it is (at most %s), "
                        "then sent with their time corrected; check NTP (UDP 123) if this lasts",
                        _human(CLOCK_HOLD))
        self._settle_clock(force=True)
        tasks = [asyncio.create_task(self._poll_loop(p), name=f"poll {p.target.address}") for p in self.pollers]
        tasks.append(asyncio.create_task(self._store_loop(), name="store"))
        if self.uplink:
            tasks.append(asyncio.create_task(self.uplink.run(), name="uplink"))
            tasks.append(asyncio.create_task(self._pump_loop(), name="pump"))
        if self.uplink:
            tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        self._start_discovery(tasks)
        try:
            await stop.wait()
        finally:
            if self.uplink:
                await self.uplink.close()  # DISCONNECT first: no new window while shutting down
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flush_readings()
            if self.uplink:
                self._pump_once()
            self.snmp.close()
            self.store.close()

    async def _poll_loop(self, poller: Poller) -> None:
        interval = self.cfg.poll.interval
        await asyncio.sleep(random.uniform(0, min(interval, 1.0)))  # spread the first polls
        while True:
            started = time.monotonic()
            async with self._gate:
                try:
                    await poller.poll_once()
                except StoreError as err:
                    self._store_failed(err)
                except Exception:  # one printer's surprise must not stop the others
                    log.exception("printer at %s: unexpected error while polling; will retry",
                                  poller.target.address)
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))

    def note_meter_events(self) -> None:
        """Keep what is held back or missing where `meterbox status` shows it (written on change only)."""
        held = [{"serial": e.serial, "meter": e.meter, "kind": e.kind, "reason": e.reason}
                for e in self.validator.open_events()]
        text = json.dumps(held, ensure_ascii=False) if held else None
        if text != self._held_text:  # compared in memory: no SQLite read per poll
            try:
                self.store.set_state("meters_held", text)
                self._held_text = text
            except StoreError as err:
                self._store_failed(err)

    async def _store_loop(self) -> None:
        while True:
            await asyncio.sleep(STORE_FLUSH)
            self._flush_readings()

    def _flush_readings(self) -> None:
        """Commit the readings polled since the last flush, and the PUBACKs meanwhile, in one commit.

        If the store cannot be written, readings stay in memory (up to MEMORY_LIMIT) and are
        committed when it can again; the error is logged once, not every flush.
        """
        if not self.to_store:
            return
        batch, self.to_store = self.to_store, []
        acked = list(self._acked)
        try:
            self.store.add_readings(self.cfg.box_id, batch, sent=acked)
        except StoreError as err:
            self._store_failed(err)
            self.to_store = batch + self.to_store
            if len(self.to_store) > MEMORY_LIMIT:
                dropped = len(self.to_store) - MEMORY_LIMIT
                del self.to_store[:dropped]
                log.error("store still cannot be written: %d oldest readings in memory dropped "
                          "(%d kept)", dropped, MEMORY_LIMIT)
            return
        self._store_ok()
        del self._acked[:len(acked)]
        self._flushed = time.monotonic()
        self.readings_stored += len(batch)
        if any(r.clock == "held" for _, r in batch):
            self._held = True
        self._wake.set()
        self._compact()

    def stamp(self, reading: Reading, synced: bool) -> None:
        """Mark a fresh reading's time as trusted, or held for correction once the clock syncs."""
        clock = self.timekeeper
        reading.boot = clock.boot()
        # The monotonic time of the reading itself, not of now: the poll took a moment.
        reading.mono = clock.monotonic() - max(clock.now() - reading.read_at, 0.0)
        reading.clock = "ntp" if synced else "held"

    def _settle_clock(self, force: bool = False) -> None:
        """Correct held readings once the clock has synced; release those that never can be."""
        if not (self._held or force):
            return
        clock = self.timekeeper
        synced = clock.synced()
        # At once when the clock has synced (before anything newer is sent); else once a second.
        if not (force or synced) and time.monotonic() - self._settled < 1.0:
            return
        self._settled = time.monotonic()
        corrected, released = self.store.settle_clock(boot=clock.boot(), synced=synced, now=clock.now(),
                                                      mono=clock.monotonic(), hold=CLOCK_HOLD)
        if corrected:
            log.info("clock synchronised: the time of %d readings taken before was corrected", corrected)
        if released:
            log.warning("%d readings whose time cannot be established (taken before a restart of the box, "
                        "or the clock did not sync within %s) are sent marked \"unsynced\"",
                        released, _human(CLOCK_HOLD))
        self._held = not synced and self.store.held() > 0

    def _compact(self) -> None:
        flying = self.uplink.flying() if self.uplink else set()
        compact(self.store, self.cfg.store.max_bytes, protect=flying | set(self._acked))

    async def _heartbeat_loop(self) -> None:
        """The box's health for the vendor (status topic): no addresses, only counts and versions."""
        while True:
            serials = {p.serial for p in self.pollers if p.serial and p.healthy}
            # No timestamp: before NTP the box's clock is not to be trusted; the broker knows when.
            body = {"firmware": __version__, "clock": "ntp" if self.timekeeper.synced() else "unsynced",
                    "backlog": self.store.backlog(),
                    "printers_seen": len(serials),
                    "printers_reported": sum(1 for s in serials if self.cfg.enroll.allows(s))}
            try:
                self.store.add_status(self.cfg.box_id, body)
                self._wake.set()
            except StoreError as err:
                self._store_failed(err)
            await asyncio.sleep(self.cfg.uplink.heartbeat)

    def _uplink_error(self, err: Exception | None) -> None:
        """The uplink's current error (or None once connected), for `meterbox status`."""
        text = str(err) if err else None
        if err is None:
            self._wake.set()  # connected: the backlog may go now
        if text != self._last_uplink_error:
            self._last_uplink_error = text
            try:
                self.store.set_state("last_error", text)
            except StoreError as store_err:
                self._store_failed(store_err)

    def _store_failed(self, err: StoreError) -> None:
        if self.store_error != str(err):
            log.error("%s", err)
        self.store_error = str(err)

    def _store_ok(self) -> None:
        if self.store_error is not None:
            log.info("store %s can be written again; %d readings kept in memory are stored",
                     self.store.path, len(self.to_store))
        self.store_error = None

    async def _pump_loop(self) -> None:
        while True:
            try:
                self._pump_once(flush=time.monotonic() - self._flushed >= ACK_FLUSH)
            except StoreError as err:
                self._store_failed(err)
            except Exception:
                log.exception("uplink pump: unexpected error; will retry")
            # Woken by a PUBACK or a commit, so a backlog drains as fast as the broker acknowledges.
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), PUMP_INTERVAL)
            except asyncio.TimeoutError:
                pass

    def _pump_once(self, flush: bool = True) -> None:
        assert self.uplink is not None
        self._acked.extend(self.uplink.take_acked())
        # While draining a backlog, half a window of PUBACKs is worth a commit of its own.
        if self._acked and (flush or len(self._acked) >= max(self.cfg.uplink.in_flight // 2, 1)):
            acked = list(self._acked)
            self.store.mark_sent(acked)
            del self._acked[:len(acked)]
            self._flushed = time.monotonic()
            self._store_ok()
        elif flush:
            self._flushed = time.monotonic()
        self._settle_clock()
        if self.uplink.connections != self._connections:
            self._connections = self.uplink.connections
            self._fresh_after = self.store.last_seq()
        paused = self.store.state("paused") == "1"
        if paused and not self.uplink.paused:
            log.info("uploads paused: no connection to the vendor until resumed")
            self.uplink.pause()
        elif not paused and self.uplink.paused:
            log.info("uploads resumed; %d readings waiting", self.store.backlog())
            self.uplink.resume()
        window = self.uplink.window()
        if window:
            for message in self.store.pending(window, exclude=self.uplink.flying() | set(self._acked),
                                              fresh_after=self._fresh_after):
                if not self.uplink.publish(message):
                    break

    # -- discovery: printers found by serial get pollers (discovery.py) --------------------

    def discovery_enabled(self) -> bool:
        """[discovery] enabled, or by default: on when no [[printers]] are listed."""
        enabled = self.cfg.discovery.enabled
        return not self.cfg.printers if enabled is None else enabled

    def _start_discovery(self, tasks: list[asyncio.Task[None]]) -> None:
        """Sweep now and on schedule; pollers of found printers join TASKS, so run() stops them."""
        self._sweep_asked = asyncio.Event()
        self._found: dict[str, tuple[Poller, asyncio.Task[None]]] = {}    # serial -> its poller
        self._tasks = tasks
        if self.discovery_enabled():
            tasks.append(asyncio.create_task(self._discovery_loop(), name="discovery"))

    def discover_now(self) -> None:
        """On demand (SIGUSR1): sweep at once, or right after the sweep that is running."""
        if hasattr(self, "_sweep_asked"):
            self._sweep_asked.set()

    async def _discovery_loop(self) -> None:
        client = SnmpClient()
        finder = Discovery(client, self.cfg.credentials, self.cfg.discovery, poll_timeout=self.cfg.poll.timeout)
        try:
            while True:
                self._sweep_asked.clear()
                try:
                    self.adopt((await finder.sweep()).printers)
                except StoreError as err:
                    self._store_failed(err)
                except Exception:  # a surprise in one sweep must not end discovery
                    log.exception("discovery: unexpected error during the sweep; will sweep again")
                lost = any(p.healthy is False for p, _ in self._found.values())
                wait = min(self.cfg.discovery.interval, LOST_PRINTER_SWEEP) if lost else self.cfg.discovery.interval
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._sweep_asked.wait(), wait)
        finally:
            client.close()

    def adopt(self, found: Iterable[Found]) -> None:
        """One poller per serial: a known serial at a new address keeps its poller (its history
        goes on); a new serial gets a new poller, even at the address of a printer now gone."""
        found = [f for f in found if self._wanted(f)]
        for item in found:
            if item.serial in self._found:
                self._move(self._found[item.serial][0], item)
            else:
                self._add_poller(item)
        present = {item.serial for item in found}
        for item in found:
            for serial, (poller, _) in list(self._found.items()):
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
        listed = [p for p in self.pollers if all(p is not q for q, _ in self._found.values())]
        return not any(p.serial == item.serial or (p.target.host, p.target.port) == (item.host, item.port)
                       for p in listed)

    def _add_poller(self, item: Found) -> None:
        target = Target(item.host, item.port, item.credential, timeout=self.cfg.poll.timeout,
                        retries=self.cfg.poll.retries)
        poller = Poller(self, target)
        poller.serial = item.serial
        task = asyncio.create_task(self._poll_loop(poller), name=f"poll {target.address}")
        self.pollers.append(poller)
        self._tasks.append(task)
        self._found[item.serial or ""] = (poller, task)
        log.info("found printer %s (%s %s) at %s, %s", item.serial, item.device.manufacturer or "?",
                 item.device.model or "?", item.address, item.credential.describe(),
                 extra={"PRINTER_SERIAL": item.serial})

    def _move(self, poller: Poller, item: Found) -> None:
        old = poller.target
        if (old.host, old.port, old.credential) == (item.host, item.port, item.credential):
            return
        poller.target = dataclasses.replace(old, host=item.host, port=item.port, credential=item.credential)
        if (old.host, old.port) != (item.host, item.port):
            log.info("printer %s moved from %s to %s; same printer, its history goes on",
                     item.serial, old.address, poller.target.address, extra={"PRINTER_SERIAL": item.serial})
            self.store.forget_address(old.address)

    def _retire(self, serial: str) -> None:
        poller, task = self._found.pop(serial)
        task.cancel()
        self.pollers.remove(poller)
