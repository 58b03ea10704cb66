"""One poller per printer: read it, judge its meters, hand the reading on; log changes, not retries.

A printer is its serial number. A poller follows one address (configured, or where
discovery last saw the serial); when another serial answers there, that is another
printer and its history starts anew. What a poll yields goes to a sink (the commit
buffer) only for printers the office enrolled; every poll's result, good or bad, is
noted for `meterbox status`, which stays on the box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from meterbox.errors import MeterboxError
from meterbox.outbox.timekeeper import Timekeeper
from meterbox.printers.poll import Hint, read_printer
from meterbox.printers.reading import Device, Reading
from meterbox.printers.snmp import SnmpClient, Target
from meterbox.printers.validate import Validator

log = logging.getLogger(__name__)

NOT_ENROLLED = "not enrolled: shown here only, nothing about it is sent (see [enroll] in the config)"


class Sink(Protocol):
    """Where an enrolled printer's readings go (the commit buffer)."""

    def add(self, device: Device, reading: Reading) -> None: ...


class History(Protocol):
    """What the store knows of printers (read and written on the store's thread)."""

    async def meter_state(self, serial: str) -> dict[str, Any] | None: ...
    async def polled(self, address: str, serial: str | None, error: str | None) -> None: ...
    async def forget(self, address: str) -> None: ...


@dataclass
class Context:
    """What every poller shares: built once by the daemon."""

    snmp: SnmpClient
    validator: Validator
    timekeeper: Timekeeper
    sink: Sink
    history: History
    enrolled: Callable[[str], bool]
    interval: float
    on_meter_events: Callable[[], Awaitable[None]] = field(default=lambda: _nothing())


async def _nothing() -> None:
    return None


class Poller:
    """Polls one address; `healthy` is None before the first poll, then True or False."""

    def __init__(self, ctx: Context, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.hint = Hint()
        self.healthy: bool | None = None
        self.serial: str | None = None
        self.polls = 0
        self.failures = 0           # polls failed in a row: the retry pace slows with them

    async def poll_once(self) -> None:
        ctx = self.ctx
        synced = ctx.timekeeper.synced()  # before the read: a sync during it must not vouch for its time
        try:
            result = await read_printer(ctx.snmp, self.target, self.hint, clock=ctx.timekeeper.clock.now)
        except MeterboxError as err:
            await self._failed(err)
            return
        device, reading = result.device, result.reading
        if not device.serial:
            if self.healthy is not False:
                log.warning("printer at %s (%s %s) reports no serial number; it is shown in "
                            "`meterbox status` but not reported", self.target.address,
                            device.manufacturer or "?", device.model or "?")
            self.healthy = False
            await ctx.history.polled(self.target.address, None, "no serial number")
            return
        self._changed(device, reading)
        self.failures = 0
        self.healthy = True
        await self._judge(device, reading, synced)

    async def _failed(self, err: MeterboxError) -> None:
        self.failures += 1
        if self.healthy is not False:
            log.warning("printer at %s: %s; will retry, less often while it does not answer",
                        self.target.address, _first_clause(err),
                        extra={"METERBOX_ADDRESS": self.target.address, "METERBOX_EVENT": err.code})
            log.debug("printer at %s: %s", self.target.address, err)
        self.healthy = False
        await self.ctx.history.polled(self.target.address, None, str(err))

    def _changed(self, device: Device, reading: Reading) -> None:
        """Log what a person should know: another printer here, back again, or first seen."""
        extra = {"METERBOX_SERIAL": device.serial}
        if self.serial and device.serial != self.serial:
            log.warning("printer at %s is now serial %s (was %s): a different printer; "
                        "its history starts anew", self.target.address, device.serial, self.serial, extra=extra)
        elif self.healthy is False:
            log.info("printer %s at %s reachable again", device.serial, self.target.address, extra=extra)
        elif self.healthy is None:
            log.info("printer %s (%s %s) at %s: %d meters, %d supplies", device.serial,
                     device.manufacturer or "?", device.model or "?", self.target.address,
                     len(reading.meters), len(reading.supplies), extra=extra)

    async def _judge(self, device: Device, reading: Reading, synced: bool) -> None:
        """Validate the meters against the printer's history, stamp the time, hand it on if enrolled."""
        ctx = self.ctx
        if not ctx.validator.knows(device.serial):  # after a restart: go on from the stored state
            ctx.validator.restore(device.serial, await ctx.history.meter_state(device.serial) or {})
        self.serial = device.serial
        self.polls += 1
        reading.meters, _ = ctx.validator.check(device.serial, reading.meters)
        await ctx.on_meter_events()
        ctx.timekeeper.stamp(reading, synced)
        if not ctx.enrolled(device.serial):
            # The office did not enroll it: shown locally, and nothing about it leaves the box.
            await ctx.history.polled(self.target.address, device.serial, NOT_ENROLLED)
            return
        ctx.sink.add(device, reading)
        await ctx.history.polled(self.target.address, device.serial, None)

    def next_delay(self, retry_cap: float) -> float:
        """The interval while it answers; doubling per failure (up to RETRY_CAP) while it does not."""
        interval = self.ctx.interval
        if not self.failures:
            return interval
        return float(min(interval * 2 ** min(self.failures, 20), max(interval, retry_cap)))


def _first_clause(err: Exception) -> str:
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("printer at ") and ": " in text else text


__all__ = ["Context", "History", "NOT_ENROLLED", "Poller", "Sink"]
