"""The pump: moves outbox rows to the uplink in a bounded window, oldest first.

Woken by commits, PUBACKs and connects, so a backlog drains as fast as the broker
acknowledges; otherwise it looks once a second. A row leaves the outbox only when its
PUBACK has been committed (CommitBuffer); until then it is "flying" and not offered again.
After a reconnect part of the window goes to rows stored since (Store.pending's fresh
lane), so current toner levels do not wait behind a week's backlog.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from meterbox.errors import StoreError
from meterbox.logs import Once
from meterbox.outbox.commits import CommitBuffer
from meterbox.outbox.store import Message, Store
from meterbox.outbox.timekeeper import Timekeeper
from meterbox.outbox.worker import StoreWorker

log = logging.getLogger(__name__)

PUMP_INTERVAL = 1.0  # without a wake-up, the pump looks this often
WITHHELD = "not enrolled: the office's choice of printers does not include it"


class Sender(Protocol):
    """What the pump needs of the uplink."""

    connections: int

    def window(self) -> int: ...
    def flying(self) -> set[str]: ...
    def publish(self, message: Message) -> bool: ...
    def take_acked(self) -> list[str]: ...


class Pump:
    """Outbox -> uplink; PUBACKs -> the commit buffer."""

    def __init__(self, uplink: Sender, db: StoreWorker, commits: CommitBuffer, timekeeper: Timekeeper,
                 enrolled: Callable[[str], bool] = lambda serial: True) -> None:
        self.uplink = uplink
        self.enrolled = enrolled    # the office's choice now: a printer it dropped is not reported, not even its backlog
        self.db = db
        self.commits = commits
        self.timekeeper = timekeeper
        self._wake = asyncio.Event()
        self._connections = 0
        self._fresh_after: int | None = None   # last seq stored when the uplink (re)connected
        self._once = Once(log)
        self.stopping = False                  # at shutdown: take PUBACKs, publish nothing new

    def wake(self) -> None:
        """Something changed (a commit, a PUBACK, a connect, a resume): look now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
                self._once.clear("pump")
            except StoreError as err:
                self._once.say("pump", f"uplink pump: {err}", logging.ERROR)
            except Exception:  # a surprise must not end uploads for good
                log.exception("uplink pump: unexpected error; will retry")
            try:
                await asyncio.wait_for(self._wake.wait(), PUMP_INTERVAL)
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> None:
        """Hand PUBACKs on, settle held times, then fill the window."""
        self.commits.acked(self.uplink.take_acked())
        if self.stopping:
            return
        await self.timekeeper.settle()  # corrected readings go in this very window
        if self.uplink.connections != self._connections:
            self._connections = self.uplink.connections
            self._fresh_after = await self.db.call(Store.last_seq)
        window = self.uplink.window()
        if not window:
            return
        exclude = self.uplink.flying() | self.commits.waiting_acks()
        messages = await self.db.call(Store.pending, window, exclude=exclude, fresh_after=self._fresh_after)
        dropped = [m for m in messages if m.serial and not self.enrolled(m.serial)]
        if dropped:
            await self.db.call(Store.withhold, [m.seq for m in dropped], WITHHELD)
            log.info("%d stored messages of printers the office did not enroll stay on the box, unsent",
                     len(dropped), extra={"METERBOX_EVENT": "withheld"})
            messages = [m for m in messages if m not in dropped]
        for message in messages:
            if self.stopping or not self.uplink.publish(message):
                break
