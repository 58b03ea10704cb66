"""Blocking calls (HTTPS, a printer's port 9100) on a daemon thread of their own, awaited from the loop.

asyncio's default executor would do the same, but `asyncio.run()` waits for its threads at exit:
an enrollment call to an unreachable vendor (a 20 s timeout, DNS unbounded) would hold a stop
long past the 2 s systemd may expect. A daemon thread is simply left behind when the process ends.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any, name: str = "blocking") -> T:
    """FN(*ARGS) on a new daemon thread; its result or exception comes back to the awaiting task."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as err:   # handed to the awaiting task, which decides
            result, error = None, err
        try:
            loop.call_soon_threadsafe(settle, future, result, error)
        except RuntimeError:           # the loop is closed: the daemon has stopped, nobody waits
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Hand a thread's outcome to the future its caller awaits (on the loop), unless it gave up."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
