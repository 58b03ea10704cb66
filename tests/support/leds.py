"""What an LED on gpiozero's mock pins did, checked with a tolerance a loaded CI machine keeps."""

from __future__ import annotations

from math import isclose

from gpiozero.pins.mock import MockPin

TOLERANCE = 0.12   # seconds: a blink thread may be scheduled late; the legend's shortest step is 0.4 s


def assert_timeline(pin: MockPin, want: list[tuple[float, bool]], tolerance: float = TOLERANCE) -> None:
    """PIN went through the states of WANT, in order, each at its time (since clear_states()).

    gpiozero's own assert_states_and_times allows 50 ms, which a busy two-core machine
    sometimes exceeds; the pattern (states, and steps told apart by their length) is the same.
    """
    got = [(s.timestamp, s.state) for s in pin.states[:len(want)]]
    assert [s for _, s in got] == [s for _, s in want], f"states {got} != {want}"
    for (at, _), (expected, _) in zip(got, want):
        assert isclose(at, expected, rel_tol=0.05, abs_tol=tolerance), f"times {got} != {want}"
