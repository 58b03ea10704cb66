"""An asyncio loop in its own thread, as the daemon's, for parts that call back from other threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any


class LoopThread:
    """The daemon's event loop stand-in: runs in its own thread; records callbacks it ran."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self.events: list[str] = []
        self._changed = threading.Condition()

    def recorder(self, name: str) -> Callable[[], None]:
        """A callback that notes NAME, and that it ran on the loop's thread."""
        def record() -> None:
            assert threading.current_thread() is self.thread, "callback not on the loop's thread"
            with self._changed:
                self.events.append(name)
                self._changed.notify_all()
        return record

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        """The events once there are COUNT of them (or what there is after TIMEOUT)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)

    def settle(self) -> list[str]:
        """The events after everything already handed to the loop has run."""
        done = threading.Event()
        self.loop.call_soon_threadsafe(done.set)
        assert done.wait(5)
        return list(self.events)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for CONDITION (checked every 10 ms) at most TIMEOUT seconds; its final value."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


def pressed_button(factory: Any, gpio: int) -> Any:
    """A mock button pin held down by a finger before anything opens it: MockPin's pull-up would
    lift it (drive it high) when the Button is made; a held button stays low until drive_high()."""
    from gpiozero.pins.mock import MockPin

    class HeldDown(MockPin):  # type: ignore[misc]
        def _set_pull(self, value: str) -> None:
            if value == "up" and not self._state:
                self._pull = value  # the finger wins over the pull-up
            else:
                super()._set_pull(value)

    pin = factory.pin(gpio, pin_class=HeldDown)
    pin.drive_low()
    return pin
