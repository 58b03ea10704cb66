"""What an LED on gpiozero's mock pins did, checked with a tolerance a loaded CI machine keeps."""

from __future__ import annotations

from math import isclose

from gpiozero.pins.mock import MockPin

TOLERANCE = 0.12   # seconds, at most: a blink thread may be scheduled late on a busy machine


def assert_timeline(pin: MockPin, want: list[tuple[float, bool]], tolerance: float = TOLERANCE) -> None:
    """PIN went through the states of WANT, in order, each after its time (since the change before).

    gpiozero's own assert_states_and_times allows 50 ms, which a busy two-core machine
    sometimes exceeds on the legend's longer steps (0.4 s pulses, 2 s pauses); a short step
    (the backlog's 50 ms flicker) keeps a tolerance of its own size, so a blink at twice the
    legend's rate still fails.
    """
    got = [(s.timestamp, s.state) for s in pin.states[:len(want)]]
    assert [s for _, s in got] == [s for _, s in want], f"states {got} != {want}"
    for (at, _), (expected, _) in zip(got, want):
        allowed = min(tolerance, max(0.05, expected / 2))
        assert isclose(at, expected, rel_tol=0.05, abs_tol=allowed), f"times {got} != {want}"
