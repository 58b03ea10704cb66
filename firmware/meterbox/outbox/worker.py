"""The store's own thread: every SQLite call of the daemon runs there, never on the event loop.

A commit waits for fsync, a compaction of a full store takes seconds (tens of seconds on
an SD card) and a quick_check reads the whole file. On the event loop any of these would
stop polls, PUBACKs and the watchdog ping. So the store has one owner, a single worker
thread: the loop hands it jobs and awaits them, and jobs run one after another, in the
order they were handed over, so the one connection needs no lock.

That order is relied on: `call` queues its job before its first await, so a caller that
takes some state (the PUBACKs waiting for their commit, the ids in flight) and queues a job in
the same step knows that every job queued earlier, a commit of those PUBACKs included, has run
before its own. A second connection (for compaction, say) would break this. While a long job runs,
readings wait in memory (the commit buffer) and the loop keeps going.

The thread is a daemon thread: a stop never waits for a long compaction to end (every
SQLite transaction is atomic, so an interrupted one loses nothing).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import sqlite3
import threading
from typing import Any, Callable, TypeVar

from meterbox.background import settle
from meterbox.outbox.failures import store_error
from meterbox.outbox.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class StoreWorker:
    """Runs jobs on the store in its one thread: `await worker.call(Store.backlog)`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="store", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """FN(store, *ARGS, **KWARGS) on the store's thread; the loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((functools.partial(fn, self.store, *args, **kwargs), loop, future))
        return await future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, future = job
            error: BaseException | None
            try:
                result, error = fn(), None
            except sqlite3.Error as err:  # one kind of error for the callers: a StoreError that says what to do
                result, error = None, store_error(self.store.path, err, "write")
            except BaseException as err:  # handed back to the awaiting coroutine, which decides
                result, error = None, err
            try:
                loop.call_soon_threadsafe(settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody waits for this any more
                pass
        self.store.close()

    def close(self, timeout: float = 1.0) -> bool:
        """Finish the jobs handed over and close the store; False if a long job still runs after TIMEOUT."""
        self._jobs.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("store: a long job (compaction?) is still running at stop; it is abandoned, "
                        "and its unfinished transaction is rolled back by SQLite at the next start")
            return False
        return True
