"""The panel on gpiozero's mock pins: the same code as on a Pi, the pin factory passed in (STYLE.md 4).

Expected LED patterns are read from hw/legend.toml, never copied here.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from meterbox.box.legend import Legend, LedState, Steps
from meterbox.box.panel import BOUNCE, Panel
from meterbox.box.pins import PinMap
from meterbox.box.state import BoxState
from support.leds import assert_timeline
from support.loop import LoopThread, pressed_button, wait_until

LEGEND = Legend.load()
PINS = PinMap.load()

# A BoxState that calls for each state of the legend, and nothing of higher priority.
CALLS_FOR = {
    "fault": BoxState(fault="storage", paused=True, sending_backlog=True, uploads_ok=True),
    "paused": BoxState(paused=True, sending_backlog=True, uploads_ok=True),
    "backlog": BoxState(sending_backlog=True, uploads_ok=True),
    "unclaimed": BoxState(unclaimed=True),
    "running": BoxState(uploads_ok=True),
    "starting": BoxState(),
}


def quick(legend: Legend, hold: float = 0.3) -> Legend:
    """The legend with a short hold time, for the tests that are about logic, not the 5 s."""
    return dataclasses.replace(legend, button=dataclasses.replace(legend.button, hold_seconds=hold))


@pytest.fixture
def panels(loop_thread: LoopThread) -> Iterator[list[tuple[Panel, MockFactory]]]:
    """Made by the test through make(); all closed afterwards."""
    made: list[tuple[Panel, MockFactory]] = []
    yield made
    for panel, factory in made:
        panel.close()
        factory.reset()


def make(loop_thread: LoopThread, made: list[tuple[Panel, MockFactory]], legend: Legend = LEGEND,
         factory: MockFactory | None = None) -> tuple[Panel, MockFactory]:
    factory = factory or MockFactory()
    panel = Panel(PINS, legend, loop_thread.loop, on_press=loop_thread.recorder("press"),
                  on_hold=loop_thread.recorder("hold"), pin_factory=factory)
    made.append((panel, factory))
    return panel, factory


def expected(steps: Steps) -> list[tuple[float, bool]]:
    """MockPin.states for one full cycle of STEPS and the first step of the next, after clear_states()."""
    if not steps:
        return [(0.0, False), (0.0, True)]
    n = len(steps)
    return [(0.0, False), (0.0, True)] + [(steps[i][1], steps[(i + 1) % n][0]) for i in range(n)]


def watch(factory: MockFactory) -> dict[str, MockPin]:
    pins = {name: factory.pin(PINS.gpio(name)) for name in ("green", "amber", "red")}
    for pin in pins.values():
        pin.clear_states()
    return pins


def assert_shows(pins: dict[str, MockPin], state: LedState, steps: Steps) -> None:
    """The state's LED plays STEPS (a whole cycle, then it repeats); the other LEDs stay dark."""
    want = expected(steps)
    lit = pins[state.led]
    if steps:
        assert wait_until(lambda: len(lit.states) >= len(want), timeout=sum(t for _, t in steps) + 5)
    else:
        assert wait_until(lambda: len(lit.states) >= 2)
        threading.Event().wait(0.3)  # steady: nothing may change in the next 0.3 s
    assert len(lit.states) >= len(want), lit.states
    assert_timeline(lit, want)
    for name, pin in pins.items():
        if name != state.led:
            assert not pin.state, f"{name} lit while showing {state.name}"
            assert [s.state for s in pin.states] == [False], f"{name} changed while showing {state.name}"


def test_every_state_shows_its_legend_pattern(loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    """Each LED state of legend.toml (but reset, shown by reset.py) on its LED, with its timing."""
    assert set(CALLS_FOR) == {s.name for s in LEGEND.states} - {"reset_armed"}
    cases = []
    for name, box in CALLS_FOR.items():
        panel, factory = make(loop_thread, panels)
        pins = watch(factory)
        panel.show(box)
        state, fault = LEGEND.choose(box)
        assert state.name == name
        cases.append((pins, state, LEGEND.steps(state, fault)))
    for pins, state, steps in cases:  # played side by side: the test takes the longest, not the sum
        assert_shows(pins, state, steps)


def test_every_fault_blinks_its_code(loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    """Each fault class: N red pulses, then the pause, repeated; N from legend.toml, all different."""
    cases = []
    for fault in LEGEND.faults:
        panel, factory = make(loop_thread, panels)
        pins = watch(factory)
        panel.show(BoxState(fault=fault.name, paused=True))
        steps = LEGEND.steps(LEGEND.state("fault"), fault)
        assert sum(1 for on, _ in steps if on) == fault.blinks
        cases.append((pins, steps))
    for pins, steps in cases:
        assert_shows(pins, LEGEND.state("fault"), steps)
    assert len({f.blinks for f in LEGEND.faults}) == len(LEGEND.faults) == 6


def test_priorities_fault_over_paused_over_activity() -> None:
    order = [s.name for s in LEGEND.states]
    assert order.index("fault") < order.index("paused") < order.index("backlog") < order.index("running")
    assert LEGEND.choose(BoxState(paused=True, fault="tls"))[0].name == "fault"
    assert LEGEND.choose(BoxState(paused=True, sending_backlog=True))[0].name == "paused"


def test_changing_state_switches_leds_and_same_state_keeps_rhythm(
        loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    panel, factory = make(loop_thread, panels)
    panel.show(BoxState(unclaimed=True))
    assert wait_until(lambda: bool(factory.pin(PINS.gpio("green")).state))   # the blink has begun
    pins = watch(factory)
    panel.show(BoxState(unclaimed=True))  # again: the blink goes on, not restarted
    assert [s.state for s in pins["green"].states] == [pins["green"].state]
    panel.show(BoxState(paused=True))
    assert not pins["green"].state and pins["amber"].state


def test_short_press_calls_on_press_on_the_loop(loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    _, factory = make(loop_thread, panels, quick(LEGEND))
    button = factory.pin(PINS.button)
    for _ in range(2):  # pause, then resume
        button.drive_low()
        button.drive_high()
        wait_until(lambda: button.state)  # released
    assert loop_thread.wait_for(2) == ["press", "press"]


def test_hold_prints_setup_page_and_its_release_is_no_press(
        loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    """The real legend's hold time (5 s): on_hold once, at 5 s; letting go afterwards does nothing."""
    _, factory = make(loop_thread, panels)
    button = factory.pin(PINS.button)
    button.drive_low()
    hold = LEGEND.button.hold_seconds
    assert loop_thread.wait_for(1, timeout=hold + 3) == ["hold"]
    button.drive_high()
    assert loop_thread.settle() == ["hold"]
    button.drive_low()  # and a short press after it is a press again
    button.drive_high()
    assert loop_thread.wait_for(2) == ["hold", "press"]


def test_button_is_debounced_by_the_pin_library(loop_thread: LoopThread,
                                                panels: list[tuple[Panel, MockFactory]]) -> None:
    """Debouncing is the pin library's (lgpio does it in the kernel's edge events); gpiozero 2.0's
    MockPin stores the bounce time but does not model chatter, so this checks what is asked of it."""
    _, factory = make(loop_thread, panels)
    assert factory.pin(PINS.button).bounce == BOUNCE
    assert factory.pin(PINS.button).pull == "up"


def test_button_held_through_a_reboot_is_not_a_press(
        loop_thread: LoopThread, panels: list[tuple[Panel, MockFactory]]) -> None:
    """A new Panel while the pin is low (held through a restart): letting go must not toggle pause."""
    factory = MockFactory()
    button = pressed_button(factory, PINS.button)
    panel, _ = make(loop_thread, panels, quick(LEGEND), factory=factory)
    assert panel.button.is_pressed
    button.drive_high()
    threading.Event().wait(0.5)  # longer than the hold time: neither a press nor a hold may come
    assert loop_thread.settle() == []


def test_no_gpio_means_panel_off_with_one_line(loop_thread: LoopThread, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    if list(Path("/dev").glob("gpiochip*")):
        pytest.skip("this machine has GPIO")
    with caplog.at_level(logging.INFO, logger="meterbox"):
        panel = Panel.create(PINS, LEGEND, loop_thread.loop, on_press=lambda: None, on_hold=lambda: None)
    assert panel is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("panel off: no GPIO on this machine"), lines


def test_close_releases_the_pins(loop_thread: LoopThread) -> None:
    factory = MockFactory()
    panel = Panel(PINS, LEGEND, loop_thread.loop, on_press=lambda: None, on_hold=lambda: None, pin_factory=factory)
    panel.show(BoxState(unclaimed=True))
    panel.close()
    panel.close()
    again = Panel(PINS, LEGEND, loop_thread.loop, on_press=lambda: None, on_hold=lambda: None, pin_factory=factory)
    again.close()
