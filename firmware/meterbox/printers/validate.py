"""Meter validation over time: lifetime counters only grow, so anything else is explained or held back.

The vendor bills from differences of lifetime counters, so a wrong value is wrong money:
- growth is accepted;
- a 32-bit counter that passes 4,294,967,295 and starts again near 0 is a wrap: the box
  keeps counting (value + 2^32) so the vendor sees no drop;
- a value below the last accepted one (0 included) is held back, not sent; if the next
  reads confirm it (CONFIRM reads, none lower than the first), it was a reset (new
  controller, service reset) and the new value becomes the baseline; if the counter
  comes back to or above the last accepted value, the low value was a bad read;
- a meter that goes missing (the printer answered -1, "unknown", or nothing) is noted.
Every such event is logged once and shown in `meterbox status`; none leaves the box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

from meterbox.printers.reading import Meter

log = logging.getLogger(__name__)

WRAP = 2 ** 32
WRAP_WINDOW = 2 ** 24   # "near the top" and "near 0" for a wrap: 16.7 M impressions either side
CONFIRM = 3             # reads of a lower value that make it a reset


@dataclass(frozen=True)
class Event:
    """Something a person should know about one meter of one printer."""

    serial: str
    meter: str
    kind: str            # wrap32, held, reset, bad-read, missing
    value: int | None
    previous: int | None
    reason: str

    def line(self) -> str:
        return f"printer {self.serial} {self.meter}: {self.reason}"


def counter_usage(before: int, after: int) -> tuple[int | None, str | None]:
    """Usage between two reads of a 32-bit lifetime counter: (usage, None), (usage, 'wrap32') or (None, why)."""
    if after >= before:
        return after - before, None
    if before % WRAP >= WRAP - WRAP_WINDOW and after % WRAP < WRAP_WINDOW:
        return after % WRAP + WRAP - before % WRAP, "wrap32"
    return None, "reset" if after > 0 else "zero"


@dataclass
class _Pending:
    first: int
    last: int
    count: int = 1


@dataclass
class Validator:
    """Holds the last accepted value of every meter of every printer (seeded from the store)."""

    accepted: dict[tuple[str, str], int] = field(default_factory=dict)
    pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    held: dict[tuple[str, str], Event] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)
    names: dict[str, set[str]] = field(default_factory=dict)   # serial -> meters accepted, to scan one printer only

    def _set(self, key: tuple[str, str], value: int) -> None:
        self.accepted[key] = value
        self.names.setdefault(key[0], set()).add(key[1])

    def knows(self, serial: str) -> bool:
        return serial in self.seeded

    def seed(self, serial: str, meters: Iterable[Meter]) -> None:
        """Start from the last reading the store holds for SERIAL (after a restart)."""
        self.seeded.add(serial)
        for m in meters:
            if (serial, m.name) not in self.accepted:
                self._set((serial, m.name), m.value)

    def check(self, serial: str, meters: list[Meter]) -> tuple[list[Meter], list[Event]]:
        """The meters that may be sent, and what happened to the others."""
        out: list[Meter] = []
        events: list[Event] = []
        seen = set()
        for m in meters:
            seen.add(m.name)
            value, event = self._one(serial, m)
            if value is not None:
                out.append(Meter(m.name, value, m.unit))
            if event:
                events.append(event)
        for name in self.names.get(serial, ()):
            previous = self.accepted[(serial, name)]
            if name not in seen and (serial, name) not in self.held:
                event = Event(serial, name, "missing", None, previous,
                              f"no value this time (the printer answered -1/unknown or nothing); last {previous:,}")
                self.held[(serial, name)] = event
                events.append(event)
        for e in events:
            log.warning("%s", e.line(), extra={"METERBOX_SERIAL": serial, "METERBOX_EVENT": e.kind})
        return out, events

    def _one(self, serial: str, m: Meter) -> tuple[int | None, Event | None]:
        key = (serial, m.name)
        previous = self.accepted.get(key)
        if previous is None:
            self._set(key, m.value)
            return m.value, None
        offset = previous - previous % WRAP
        value = m.value + offset
        if value >= previous:
            return self._accept(key, value, self._came_back(serial, m.name, previous, value))
        usage, why = counter_usage(previous, value)
        if why == "wrap32" and usage is not None:
            return self._accept(key, previous + usage, Event(
                serial, m.name, "wrap32", previous + usage, previous,
                f"32-bit counter wrapped ({previous % WRAP:,} -> {m.value:,}); counting on at {previous + usage:,}"))
        return self._hold(serial, m.name, previous, value)

    def _accept(self, key: tuple[str, str], value: int, event: Event | None) -> tuple[int, Event | None]:
        self._set(key, value)
        self.pending.pop(key, None)
        if key in self.held and (event is None or event.kind != "bad-read"):
            self.held.pop(key)
        return value, event

    def _came_back(self, serial: str, name: str, previous: int, value: int) -> Event | None:
        key = (serial, name)
        self.held.pop(key, None)
        pending = self.pending.pop(key, None)
        if pending is None:
            return None
        return Event(serial, name, "bad-read", pending.first, previous,
                     f"back to {value:,}: the earlier {pending.first:,} (below {previous:,}) was a bad read, not billed")

    def _hold(self, serial: str, name: str, previous: int, value: int) -> tuple[int | None, Event | None]:
        key = (serial, name)
        pending = self.pending.get(key)
        if pending is None or value < pending.last:
            pending = self.pending[key] = _Pending(value, value)
        else:
            pending.count += 1
            pending.last = value
        if pending.count >= CONFIRM:
            self.pending.pop(key)
            self.held.pop(key, None)
            self._set(key, value)
            return value, Event(serial, name, "reset", value, previous,
                                f"reset: went from {previous:,} to {pending.first:,}, confirmed by {CONFIRM} reads; "
                                f"counting from {value:,} now")
        word = "dropped to 0" if value == 0 else f"went back to {value:,}"
        event = Event(serial, name, "held", value, previous,
                      f"{word} from {previous:,}: held back, not billed, until the next reads confirm "
                      f"a reset or show a bad read ({pending.count}/{CONFIRM})")
        self.held[key] = event
        return None, event

    def open_events(self) -> list[Event]:
        """What is held back or missing now, for `meterbox status`."""
        return list(self.held.values())
