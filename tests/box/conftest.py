"""Fixtures for the box's own parts: an asyncio loop in its own thread, as the daemon's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.loop import LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    lt.thread.start()
    yield lt
    lt.loop.call_soon_threadsafe(lt.loop.stop)
    lt.thread.join(5)
    lt.loop.close()
