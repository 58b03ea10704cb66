"""The commit buffer: readings and PUBACKs of half a second go to the store in one commit.

Group commits spare the SD card (one fsync for a whole poll round) and the store thread
writes them, so the loop never waits for a disk. If the store cannot be written (full
disk, read-only card), readings stay here, up to MEMORY_LIMIT, until it can again; that
is said once, and so is the recovery, with the number of readings then written.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable, Protocol

from meterbox.errors import StoreError
from meterbox.logs import Once
from meterbox.outbox.compact import compact
from meterbox.outbox.store import Store
from meterbox.outbox.worker import StoreWorker
from meterbox.printers.reading import Device, Reading

log = logging.getLogger(__name__)

STORE_FLUSH = 0.5       # readings of one poll round are committed together (group commit)
MEMORY_LIMIT = 10_000   # readings kept in memory while the store cannot be written


class MeterStates(Protocol):
    """The validator's changed per-printer states, committed with the readings they go with."""

    def unsaved(self) -> dict[str, dict[str, Any]]: ...
    def saved(self, states: dict[str, dict[str, Any]]) -> None: ...
    def resave(self, states: dict[str, dict[str, Any]]) -> None: ...


class _NoStates:
    def unsaved(self) -> dict[str, dict[str, Any]]:
        return {}

    def saved(self, states: dict[str, dict[str, Any]]) -> None:
        pass

    def resave(self, states: dict[str, dict[str, Any]]) -> None:
        pass


class CommitBuffer:
    """Collects readings, meter states and PUBACKed ids; commits them off the loop."""

    def __init__(self, db: StoreWorker, box_id: str, *, max_bytes: int, ack_batch: int = 10,
                 on_stored: Callable[[list[Reading]], None] = lambda readings: None,
                 in_flight: Callable[[], set[str]] = set, states: MeterStates | None = None) -> None:
        self.db = db
        self.box_id = box_id
        self.max_bytes = max_bytes
        self.ack_batch = max(ack_batch, 1)     # this many PUBACKs are worth a commit of their own
        self.on_stored = on_stored             # readings now in the store: the pump may send them
        self.in_flight = in_flight             # ids compaction must not touch
        self.readings: list[tuple[Device, Reading]] = []
        self.acks: list[str] = []
        self.states = states or _NoStates()
        self.error: str | None = None          # the store's current write failure
        self.stored = 0                        # readings committed since start
        self.committing = 0                    # readings in the commit under way
        self._kept = 0                         # readings that waited in memory through a failed commit
        self._dropped = 0                      # of those, dropped past MEMORY_LIMIT
        self.stopping = threading.Event()     # set at stop: a compaction ends after its transaction
        self._once = Once(log)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    # --- fed from the loop ---------------------------------------------------------
    def add(self, device: Device, reading: Reading) -> None:
        self.readings.append((device, reading))
        if len(self.readings) > MEMORY_LIMIT:   # the store is stuck (or its thread busy for long): bounded
            del self.readings[0]
            self._dropped += 1

    def acked(self, ids: list[str]) -> None:
        """The broker has these: they leave the outbox at the next commit (a crash only resends them)."""
        self.acks.extend(ids)
        if len(self.acks) >= self.ack_batch:
            self._wake.set()

    def waiting_acks(self) -> set[str]:
        """Acked but not yet committed: not to be offered again meanwhile."""
        return set(self.acks)

    # --- the task --------------------------------------------------------------------
    async def run(self) -> None:
        """Commit every STORE_FLUSH seconds, or sooner when a batch of PUBACKs is waiting."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), STORE_FLUSH)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a surprise must not end every commit for good: said, then tried again
                if self._once.say("surprise", "commits: unexpected error; readings stay in memory and the "
                                  "commit is tried again", logging.ERROR):
                    log.exception("commits: unexpected error")

    async def flush(self) -> None:
        """One commit of everything waiting; on a store failure the readings stay in memory."""
        async with self._lock:
            self.committing = 0
            states = self.states.unsaved()
            if not (self.readings or self.acks or states):
                return
            batch, acks = self.readings, self.acks
            self.readings, self.acks = [], []
            self.committing = len(batch)
            try:
                await self.db.call(Store.add_readings, self.box_id, batch, sent=acks, meter_states=states)
            except StoreError as err:
                self.states.resave(states)
                self.committing = 0
                self._failed(err, batch, acks)
                return
            self.states.saved(states)
            self.committing = 0
            self._recovered()
            self.stored += len(batch)
            if batch:
                self.on_stored([reading for _, reading in batch])
                await self._compact()

    def _failed(self, err: StoreError, batch: list[tuple[Device, Reading]], acks: list[str]) -> None:
        self.error = str(err)
        self._once.say("store", str(err), logging.ERROR)
        self.readings = batch + self.readings
        self.acks = acks + self.acks
        if len(self.readings) > MEMORY_LIMIT:
            dropped = len(self.readings) - MEMORY_LIMIT
            del self.readings[:dropped]
            self._dropped += dropped
            log.error("store still cannot be written: the %d oldest readings kept in memory were dropped "
                      "(%d kept)", dropped, MEMORY_LIMIT)
        self._kept = len(self.readings)  # readings polled after this commit failed have not waited (yet)

    def _recovered(self) -> None:
        """Say how many readings waited for the store; those polled since its last failure did not."""
        if self._once.clear("store"):
            lost = f" ({self._dropped} older ones were dropped: memory is bounded)" if self._dropped else ""
            log.info("store can be written again; %d readings kept in memory meanwhile are stored%s",
                     self._kept, lost)
        self._kept = self._dropped = 0
        self.error = None

    async def _compact(self) -> None:
        """Over [store] max_size: compact on the store's thread (cheap size check first)."""
        if await self.db.call(Store.size) <= self.max_bytes:
            return
        protect = self.in_flight() | set(self.acks)
        try:
            await self.db.call(compact, self.max_bytes, protect, self.stopping.is_set)
        except StoreError as err:
            self._once.say("compact", str(err), logging.ERROR)
