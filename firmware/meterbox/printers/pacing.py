"""Pacing: a sweep sends at most so many packets a second, so an office switch or IDS never sees a flood."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Paces packets to RATE per second on average, with bursts of at most BURST."""

    def __init__(self, rate: float, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst or max(1, int(rate) // 20))
        self.tokens = self.burst
        self.clock = clock
        self.stamp = clock()
        self.taken = 0
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self) -> None:
        """Wait for one token; waiters are served in turn (asyncio.Lock is FIFO), so the pace holds."""
        async with self._lock:
            self._refill()
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                self._refill()
            self.tokens -= 1
            self.taken += 1
