"""The panel: one button and three LEDs, on gpiozero, with the pin factory passed in (STYLE.md 4).

gpiozero calls back from its own threads; every event goes to the daemon's asyncio loop
with ``call_soon_threadsafe``, so the daemon's callbacks run where the daemon lives.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from itertools import cycle
from typing import Any, Callable

from gpiozero import LED, Button
from gpiozero.threads import GPIOThread

from meterbox.box.legend import Legend, Steps
from meterbox.box.pins import PinMap, gpio_missing
from meterbox.box.state import BoxState

log = logging.getLogger(__name__)

LEDS = ("green", "amber", "red")
BOUNCE = 0.05  # seconds: a contact that chatters less than this is one press


class PatternLED(LED):  # type: ignore[misc]  # gpiozero has no type hints
    """An LED that plays a legend pattern in gpiozero's own blink thread (stopped by on/off/close)."""

    def play(self, steps: Steps) -> None:
        """Loop STEPS ((on?, seconds), ...); () is steady on."""
        if not steps:
            self.on()
            return
        self._stop_blink()
        self._blink_thread = GPIOThread(self._play_steps, (steps,))
        self._blink_thread.start()

    def _play_steps(self, steps: Steps) -> None:
        for value, seconds in cycle(steps):
            self._write(value)
            if self._blink_thread.stopping.wait(seconds):
                break


class Panel:
    """Button and LEDs. Takes the pin factory so tests run this very code on mock pins.

    ``on_press`` runs on a short press (the daemon toggles pause), ``on_hold`` once the button
    has been held for the legend's hold time (the setup page); the release after a hold is not
    a press. Both run on LOOP.

    Example::

        panel = Panel.create(PinMap.load(), Legend.load(), loop, on_press=toggle_pause,
                             on_hold=print_setup_page)
        if panel:
            panel.show(BoxState(paused=True))
    """

    def __init__(self, pins: PinMap, legend: Legend, loop: asyncio.AbstractEventLoop, *,
                 on_press: Callable[[], None], on_hold: Callable[[], None], pin_factory: Any = None) -> None:
        self.legend = legend
        self._loop = loop
        self._on_press, self._on_hold = on_press, on_hold
        self._held = False
        self._shown: tuple[str, Steps] | None = None
        self._lock = threading.Lock()
        self.leds: dict[str, PatternLED] = {}
        try:
            for name in LEDS:
                self.leds[name] = PatternLED(pins.gpio(name), pin_factory=pin_factory)
            self.button = Button(pins.button, pull_up=True, bounce_time=BOUNCE,
                                 hold_time=legend.button.hold_seconds, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise
        # Down already (held through a restart, e.g. after a factory reset): its release is no press.
        self._held = bool(self.button.is_pressed)
        # gpiozero calls these from its own threads.
        self.button.when_held = self._held_now
        self.button.when_released = self._released

    @classmethod
    def create(cls, pins: PinMap, legend: Legend, loop: asyncio.AbstractEventLoop, *,
               on_press: Callable[[], None], on_hold: Callable[[], None],
               pin_factory: Any = None) -> "Panel | None":
        """The panel, or None (after one log line saying why) on a machine without GPIO."""
        if pin_factory is None:
            missing = gpio_missing()
            if missing:
                log.info("panel off: %s; the box runs without button and LEDs", missing)
                return None
        try:
            return cls(pins, legend, loop, on_press=on_press, on_hold=on_hold, pin_factory=pin_factory)
        except Exception as err:  # gpiozero raises its own classes for a busy or missing pin
            log.warning("panel off: GPIO %s/%s/%s/%s cannot be used (%s: %s); the box runs without "
                        "button and LEDs", pins.button, pins.green, pins.amber, pins.red,
                        type(err).__name__, err)
            return None

    def show(self, state: BoxState) -> None:
        """Light the one legend state that STATE calls for; unchanged patterns keep their rhythm."""
        chosen, fault = self.legend.choose(state)
        steps = self.legend.steps(chosen, fault)
        with self._lock:
            if self._shown == (chosen.led, steps) or not self.leds:
                return
            self._shown = (chosen.led, steps)
            for name, led in self.leds.items():
                if name != chosen.led:
                    led.off()
            self.leds[chosen.led].play(steps)
        log.debug("panel: %s%s", chosen.name, f" ({fault.name}, {fault.blinks} blinks)" if fault else "")

    def close(self) -> None:
        """Release the pins (LEDs dark); safe to call twice."""
        with self._lock:
            for led in self.leds.values():
                led.off()
                led.close()
            self.leds = {}
            button = getattr(self, "button", None)
            if button is not None:
                button.close()

    # -- gpiozero's threads ------------------------------------------------------------------

    def _held_now(self) -> None:
        self._held = True
        self._loop.call_soon_threadsafe(self._on_hold)

    def _released(self) -> None:
        if self._held:  # the end of a hold, not a press
            self._held = False
            return
        self._loop.call_soon_threadsafe(self._on_press)
