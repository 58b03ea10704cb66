"""The box's health for the vendor (the status topic): counts and versions, never addresses.

No timestamp: before NTP the box's clock is not to be trusted, and the broker knows when
a message arrived. One heartbeat waits at most in the outbox (Store.add_status), however
long an outage lasts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from meterbox import __version__
from meterbox.errors import StoreError
from meterbox.logs import Once
from meterbox.outbox.store import Store
from meterbox.outbox.worker import StoreWorker

log = logging.getLogger(__name__)


class Heartbeat:
    """Queues a status message every INTERVAL seconds."""

    def __init__(self, db: StoreWorker, box_id: str, interval: float, *,
                 synced: Callable[[], bool], printers: Callable[[], tuple[int, int]],
                 wake: Callable[[], None]) -> None:
        self.db = db
        self.box_id = box_id
        self.interval = interval
        self.synced = synced          # is the clock synchronised?
        self.printers = printers      # (printers seen, printers reported)
        self.wake = wake              # the pump: a message is waiting
        self._once = Once(log)

    async def body(self) -> dict[str, object]:
        seen, reported = self.printers()
        return {"firmware": __version__, "clock": "ntp" if self.synced() else "unsynced",
                "backlog": await self.db.call(Store.backlog),
                "printers_seen": seen, "printers_reported": reported}

    async def run(self) -> None:
        while True:
            try:
                await self.db.call(Store.add_status, self.box_id, await self.body())
                self._once.clear("store")
                self.wake()
            except StoreError as err:
                self._once.say("store", f"heartbeat not stored: {err}", logging.ERROR)
            except Exception:  # a surprise must not end the heartbeat for good
                if self._once.say("surprise", "heartbeat: unexpected error; trying again later", logging.ERROR):
                    log.exception("heartbeat: unexpected error")
            await asyncio.sleep(self.interval)
