"""Dates on readings: trusted when the clock is synchronised, held and corrected when it was not.

The Pi has no real-time clock. A reading taken before NTP has set the time is stored
"held" with its boot and monotonic time and never sent as is; once the clock syncs in
the same boot its time is corrected, and one whose time can never be established (taken
before a restart, or no sync within CLOCK_HOLD) is sent marked "unsynced".
"""

from __future__ import annotations

import logging
import time

from meterbox.outbox.clock import Clock
from meterbox.outbox.store import Store
from meterbox.outbox.worker import StoreWorker
from meterbox.printers.reading import Reading

log = logging.getLogger(__name__)

CLOCK_HOLD = 3600.0  # readings wait this long for a clock sync before they are sent marked "unsynced"


def human(seconds: float) -> str:
    """A duration as people write it in the config: 5s, 15m, 1h."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


class Timekeeper:
    """Stamps fresh readings and settles held ones; the one owner of "may this date be trusted"."""

    def __init__(self, clock: Clock, db: StoreWorker) -> None:
        self.clock = clock
        self.db = db
        self._held = True          # there may be held readings in the store (checked at the first settle)
        self._settled = 0.0

    def synced(self) -> bool:
        return self.clock.synced()

    def stamp(self, reading: Reading, synced: bool) -> None:
        """Mark a fresh reading's time as trusted (SYNCED before the read), or held for correction."""
        clock = self.clock
        reading.boot = clock.boot()
        # The monotonic time of the reading itself, not of now: the poll took a moment.
        reading.mono = clock.monotonic() - max(clock.now() - reading.read_at, 0.0)
        reading.clock = "ntp" if synced else "held"

    def stored(self, readings: list[Reading]) -> None:
        """Held readings are in the store now: the next settle looks for them."""
        if any(r.clock == "held" for r in readings):
            self._held = True

    def warn_if_unsynced(self) -> None:
        if not self.clock.synced():
            log.warning("the clock is not synchronised yet: readings are held until it is (at most %s), "
                        "then sent with their time corrected; check NTP (UDP 123) if this lasts",
                        human(CLOCK_HOLD))

    async def settle(self, force: bool = False) -> bool:
        """Correct held readings once the clock has synced, release those that never can be; True if any."""
        if not (self._held or force):
            return False
        synced = self.clock.synced()
        # At once when the clock has synced (before anything newer is sent); else once a second.
        if not (force or synced) and time.monotonic() - self._settled < 1.0:
            return False
        self._settled = time.monotonic()
        clock = self.clock
        corrected, released = await self.db.call(
            Store.settle_clock, boot=clock.boot(), synced=synced, now=clock.now(), mono=clock.monotonic(),
            hold=CLOCK_HOLD)
        if corrected:
            log.info("clock synchronised: the time of %d readings taken before was corrected", corrected)
        if released:
            log.warning("%d readings whose time cannot be established (taken before a restart of the box, "
                        "or the clock did not sync within %s) are sent marked \"unsynced\"",
                        released, human(CLOCK_HOLD))
        self._held = not synced and await self.db.call(Store.held) > 0
        return bool(corrected or released)
