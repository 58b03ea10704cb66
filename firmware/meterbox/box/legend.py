"""The panel legend (hw/legend.toml): LED states, fault blink codes, the button; and its text.

One source for the LEDs, their tests, the README, hw/ and the setup page.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from meterbox.box.pins import PARTS, data_file
from meterbox.box.state import BoxState
from meterbox.errors import ConfigError

#: A pattern: (LED on?, seconds) steps played in a loop; () is steady on.
Steps = tuple[tuple[bool, float], ...]

#: When each LED state applies. A state in legend.toml that is not named here is an error.
APPLIES: dict[str, Callable[[BoxState], bool]] = {
    "reset_armed": lambda s: False,  # shown by the factory reset at start-up, never by the daemon
    "fault": lambda s: s.fault is not None,
    "paused": lambda s: s.paused,
    "backlog": lambda s: s.sending_backlog,
    "unclaimed": lambda s: s.unclaimed,
    "running": lambda s: s.uploads_ok,
    "starting": lambda s: True,
}


class LegendError(ConfigError):
    """hw/legend.toml is inconsistent (a packaging or editing mistake, not a site problem)."""


@dataclass(frozen=True)
class LedState:
    """One row of the LED table: which LED, its pattern, and what it tells a person."""

    name: str
    led: str
    steps: Steps | None      # None: the fault's blink code
    priority: int
    meaning: str


@dataclass(frozen=True)
class Fault:
    """A fault class: its red blink count, what it means, and what to do."""

    name: str
    blinks: int
    title: str
    meaning: str
    action: str
    codes: tuple[str, ...]   # MeterboxError.code values that are this fault


@dataclass(frozen=True)
class ButtonLegend:
    hold_seconds: float
    reset_seconds: float
    press: str
    hold: str
    reset: str


@dataclass(frozen=True)
class FaultCode:
    pulse_on: float
    pulse_off: float
    pause: float


@dataclass(frozen=True)
class Legend:
    """hw/legend.toml, read and checked.

    Example::

        legend = Legend.load()
        state, fault = legend.choose(BoxState(fault="tls"))
        legend.steps(state, fault)   # 3 red pulses, then a pause
    """

    states: tuple[LedState, ...]    # highest priority first
    faults: tuple[Fault, ...]       # by blink count
    button: ButtonLegend
    fault_code: FaultCode

    @classmethod
    def load(cls, path: Path | None = None) -> "Legend":
        """Read PATH (default: the packaged hw/legend.toml); LegendError says what is inconsistent."""
        path = path or data_file("legend.toml")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
            legend = _parse(doc)
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
            if isinstance(err, LegendError):
                raise LegendError(f"{path}: {err}") from None
            raise LegendError(f"legend {path} cannot be used ({type(err).__name__}: {err}); "
                              "reinstall meterbox or fix hw/legend.toml") from None
        return legend

    def state(self, name: str) -> LedState:
        return next(s for s in self.states if s.name == name)

    def fault(self, name: str) -> Fault:
        """The fault class NAME; an unknown name is a programming error (KeyError)."""
        for fault in self.faults:
            if fault.name == name:
                return fault
        raise KeyError(f"no fault class {name!r} in legend.toml; known: {[f.name for f in self.faults]}")

    def fault_for_code(self, code: str) -> Fault | None:
        """The fault class of a MeterboxError.code (e.g. "tls"), for the LED and `meterbox status`."""
        return next((f for f in self.faults if code in f.codes), None)

    def choose(self, box: BoxState) -> tuple[LedState, Fault | None]:
        """The one state to show: the highest priority that applies (fault over paused over activity)."""
        state = next(s for s in self.states if APPLIES[s.name](box))
        return state, self.fault(box.fault) if state.name == "fault" and box.fault else None

    def steps(self, state: LedState, fault: Fault | None = None) -> Steps:
        """The on/off steps of STATE (for "fault", FAULT's code: N pulses, then the pause)."""
        if state.steps is not None:
            return state.steps
        if fault is None:
            raise ValueError(f"state {state.name} blinks a fault code: give the fault")
        c = self.fault_code
        return ((True, c.pulse_on), (False, c.pulse_off)) * (fault.blinks - 1) + ((True, c.pulse_on), (False, c.pause))


def _parse(doc: dict[str, Any]) -> Legend:
    states = tuple(sorted((_state(t) for t in doc["state"]), key=lambda s: -s.priority))
    faults = tuple(sorted((Fault(name=str(t["name"]), blinks=int(t["blinks"]), title=str(t["title"]),
                                 meaning=str(t["meaning"]), action=str(t["action"]),
                                 codes=tuple(str(c) for c in t.get("codes", ())))
                           for t in doc["fault"]), key=lambda f: f.blinks))
    b, c = doc["button"], doc["fault_code"]
    legend = Legend(states=states, faults=faults,
                    button=ButtonLegend(hold_seconds=float(b["hold_seconds"]), reset_seconds=float(b["reset_seconds"]),
                                        press=str(b["press"]), hold=str(b["hold"]), reset=str(b["reset"])),
                    fault_code=FaultCode(float(c["pulse_on"]), float(c["pulse_off"]), float(c["pause"])))
    _check(legend)
    return legend


def _state(t: dict[str, Any]) -> LedState:
    pattern = t["pattern"]
    steps: Steps | None
    if pattern == "fault_code":
        steps = None
    else:
        steps = tuple(step for on, off in pattern for step in ((True, float(on)), (False, float(off))))
    return LedState(name=str(t["name"]), led=str(t["led"]), steps=steps, priority=int(t["priority"]),
                    meaning=str(t["meaning"]))


def _check(legend: Legend) -> None:
    names = [s.name for s in legend.states]
    for name in names:
        if name not in APPLIES:
            raise LegendError(f"state {name!r} is not one the firmware knows ({', '.join(APPLIES)})")
    for name in APPLIES:
        if name not in names:
            raise LegendError(f"state {name!r} is missing; the firmware shows it")
    for state in legend.states:
        if state.led not in PARTS[1:]:
            raise LegendError(f"state {state.name}: led {state.led!r} is not green, amber or red")
        if any(t <= 0 for _, t in state.steps or ()):
            raise LegendError(f"state {state.name}: every on and off time must be above 0 s")
    blinks = [f.blinks for f in legend.faults]
    if len(set(blinks)) != len(blinks) or min(blinks) < 1:
        raise LegendError("each fault needs its own blink count, 1 or more")
    if len({s.priority for s in legend.states}) != len(legend.states):
        raise LegendError("two states share a priority; which one shows would be a guess")


# ---------------------------------------------------------------------------- text

def pattern_words(legend: Legend, state: LedState) -> str:
    """The pattern in words a person on the phone uses: "steady", "slow blink (1 s on, 1 s off)"."""
    if state.steps is None:
        c = legend.fault_code
        return f"red pulses, counted ({c.pulse_on:g} s each), then {c.pause:g} s dark"
    if not state.steps:
        return "steady"
    on, off = state.steps[0][1], state.steps[1][1]
    if len(state.steps) == 2 and on == off:
        kind = "slow blink" if on >= 0.5 else "flicker" if on < 0.1 else "fast blink"
    else:
        kind = "short flash"
    return f"{kind} ({on:g} s on, {off:g} s off)"


def led_rows(legend: Legend) -> list[tuple[str, str, str]]:
    """(LED, pattern in words, meaning) for each state, highest priority first."""
    return [(s.led, pattern_words(legend, s), s.meaning) for s in legend.states]


def render_markdown(legend: Legend) -> str:
    """The legend as Markdown tables, for README.md and hw/ (a test keeps README's copy equal)."""
    out = ["One LED state shows at a time: the highest in this table that applies; "
           "the other LEDs stay dark.", "",
           "| LED | pattern | meaning |", "|---|---|---|"]
    out += [f"| {led} | {words} | {meaning} |" for led, words, meaning in led_rows(legend)]
    out += ["", "Red blink codes (read the count out to support):", "",
            "| red pulses | fault | what it means | what to do |", "|---|---|---|---|"]
    out += [f"| {f.blinks} | {f.title} | {f.meaning} | {f.action} |" for f in legend.faults]
    b = legend.button
    out += ["", "The button:", "", f"- {b.press}", f"- {b.hold}", f"- {b.reset}"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # python -m meterbox.box.legend: the section for README.md and hw/
    print("<!-- legend -->\n" + render_markdown(Legend.load()) + "<!-- /legend -->")
