"""The daemon: one poller per printer, the store first, the uplink last.

Pollers start at random offsets and never stop each other; a reading is committed to
the store before anything else sees it; the pump moves outbox rows to the uplink in
a bounded window and marks them sent only on PUBACK.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Callable

from meterbox.config import Config, PrinterTarget
from meterbox.errors import MeterboxError, StoreError
from meterbox.poll import Hint, read_printer
from meterbox.reading import Device, Meter, Reading
from meterbox.snmp import SnmpClient, Target
from meterbox.store import Store
from meterbox.uplink import Uplink
from meterbox.validate import Validator

log = logging.getLogger(__name__)

PUMP_INTERVAL = 0.1
STORE_FLUSH = 0.5  # readings of one poll round are committed together (group commit)
ACK_FLUSH = 1.0  # PUBACKs are committed in batches: fewer writes; a crash only causes a resend (same id)


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
        if self.serial != device.serial:
            d.validator.seed(device.serial, (Meter(m["name"], m["value"], m["unit"])
                                             for m in d.store.last_meters(device.serial)))
        self.serial = device.serial
        self.polls += 1
        reading.meters, _ = d.validator.check(device.serial, reading.meters)
        d.note_meter_events()
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

    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = Store(cfg.state_dir / "meterbox.db")
        self.snmp = SnmpClient()
        self.uplink = Uplink(cfg.uplink, cfg.box_id) if cfg.uplink.host else None
        self.pollers = [Poller(self, target_of(p, cfg)) for p in cfg.printers]
        self.readings_stored = 0
        self.to_store: list[tuple[Device, Reading]] = []
        self.validator = Validator()
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
            self.uplink.start()
        log.info("meterbox %s polling %d printers every %s; %d readings waiting to be sent",
                 self.cfg.box_id, len(self.pollers), _human(self.cfg.poll.interval), self.store.backlog())
        tasks = [asyncio.create_task(self._poll_loop(p), name=f"poll {p.target.address}") for p in self.pollers]
        tasks.append(asyncio.create_task(self._store_loop(), name="store"))
        if self.uplink:
            tasks.append(asyncio.create_task(self._pump_loop(), name="pump"))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flush_readings()
            if self.uplink:
                self._pump_once()
                self.uplink.stop()
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
                    log.error("%s", err)
                except Exception:  # one printer's surprise must not stop the others
                    log.exception("printer at %s: unexpected error while polling; will retry",
                                  poller.target.address)
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))

    def note_meter_events(self) -> None:
        """Keep what is held back or missing where `meterbox status` shows it (written on change only)."""
        held = [{"serial": e.serial, "meter": e.meter, "kind": e.kind, "reason": e.reason}
                for e in self.validator.open_events()]
        text = json.dumps(held, ensure_ascii=False) if held else None
        if text != self.store.state("meters_held"):
            try:
                self.store.set_state("meters_held", text)
            except StoreError as err:
                log.error("%s", err)

    async def _store_loop(self) -> None:
        while True:
            await asyncio.sleep(STORE_FLUSH)
            self._flush_readings()

    def _flush_readings(self) -> None:
        """Commit the readings polled since the last flush; kept in memory if the store fails."""
        if not self.to_store:
            return
        batch, self.to_store = self.to_store, []
        try:
            self.store.add_readings(self.cfg.box_id, batch)
        except StoreError as err:
            log.error("%s", err)
            self.to_store = batch + self.to_store
            return
        self.readings_stored += len(batch)

    async def _pump_loop(self) -> None:
        while True:
            try:
                self._pump_once(flush=time.monotonic() - self._flushed >= ACK_FLUSH)
            except StoreError as err:
                log.error("%s", err)
            except Exception:
                log.exception("uplink pump: unexpected error; will retry")
            await asyncio.sleep(PUMP_INTERVAL)

    def _pump_once(self, flush: bool = True) -> None:
        assert self.uplink is not None
        self._acked.extend(self.uplink.take_acked())
        if flush:
            self.store.mark_sent(self._acked)
            self._acked.clear()
            self._flushed = time.monotonic()
        paused = self.store.state("paused") == "1"
        if paused and not self.uplink.paused:
            log.info("uploads paused: no connection to the vendor until resumed")
            self.uplink.pause()
        elif not paused and self.uplink.paused:
            log.info("uploads resumed; %d readings waiting", self.store.backlog())
            self.uplink.resume()
        window = self.uplink.window()
        if window:
            for message in self.store.pending(window, exclude=self.uplink.flying() | set(self._acked)):
                if not self.uplink.publish(message):
                    break
