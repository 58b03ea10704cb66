"""Meter validation over time: lifetime counters only grow, so anything else is explained or held back.

The vendor bills from differences of lifetime counters, so a wrong value is wrong money:
- growth is accepted;
- a 32-bit counter (Meter.bits == 32: Counter32, Gauge32, INTEGER) that passes 4,294,967,295
  and starts again near 0 is a wrap: the box keeps counting (value + 2^32) so the vendor sees no
  drop. A Counter64, a sum of several counters or a decoded blob never wraps;
- a value below the last accepted one (0 included) is held back, not sent; if the next
  reads confirm it (CONFIRM reads, none lower than the first), it was a reset (new
  controller, service reset) and the new value becomes the baseline, without any wrap
  offset; if the counter comes back to or above the last accepted value, the low value
  was a bad read;
- a meter that goes missing (the printer answered -1, "unknown", or nothing) is noted.
Every such event is logged once and shown in `meterbox status`; none leaves the box.

The state survives a restart (`export`/`restore`, kept by the store): the accepted values of
meters that were sent are in the printer's newest stored reading; what no reading carries
(wrap offsets, pending resets, held and missing meters with their last accepted value) is
exported, and it changes only on such events, so the SD card is written only then.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from meterbox.printers.reading import Meter

log = logging.getLogger(__name__)

WRAP = 2 ** 32
WRAP_WINDOW = 2 ** 24   # "near the top" and "near 0" for a wrap: 16.7 M impressions either side
CONFIRM = 3             # reads of a lower value that make it a reset

Key = tuple[str, str]   # (serial, meter name)


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
    first: int           # the raw values read, without any wrap offset
    last: int
    count: int = 1


@dataclass
class Validator:
    """Holds the last accepted value of every meter of every printer (restored from the store)."""

    accepted: dict[Key, int] = field(default_factory=dict)
    offset: dict[Key, int] = field(default_factory=dict)       # 32-bit wraps so far, as a multiple of 2^32
    pending: dict[Key, _Pending] = field(default_factory=dict)
    held: dict[Key, Event] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)
    names: dict[str, set[str]] = field(default_factory=dict)   # serial -> meters accepted, to scan one printer only
    _saved: dict[str, str] = field(default_factory=dict)        # serial -> exported state as last stored
    _checked: set[str] = field(default_factory=set)             # serials checked since the last unsaved()

    def _set(self, key: Key, value: int) -> None:
        self.accepted[key] = value
        self.names.setdefault(key[0], set()).add(key[1])

    def knows(self, serial: str) -> bool:
        return serial in self.seeded

    # -- persistence ------------------------------------------------------------------------

    def export(self, serial: str) -> dict[str, Any]:
        """What a stored reading does not carry: offsets, pending resets, held and missing meters.

        Accepted values are exported only for the meters that the last reading sent lacks
        (held, missing, pending); the others are in that reading (see Store.meter_state).
        """
        names = sorted(self.names.get(serial, ()))
        keys = [(serial, n) for n in names]
        open_ = [k for k in keys if k in self.held or k in self.pending]
        return {
            "accepted": {k[1]: self.accepted[k] for k in open_},
            "offset": {k[1]: self.offset[k] for k in keys if self.offset.get(k)},
            "pending": {k[1]: [p.first, p.last, p.count] for k in keys if (p := self.pending.get(k))},
            "held": {k[1]: [e.kind, e.value, e.previous, e.reason] for k in keys if (e := self.held.get(k))},
        }

    def restore(self, serial: str, state: dict[str, Any]) -> None:
        """Continue from STATE (Store.meter_state: accepted values of every meter, and the export)."""
        self.seeded.add(serial)
        try:
            for name, value in state.get("accepted", {}).items():
                self._set((serial, name), int(value))
            for name, value in state.get("offset", {}).items():
                self.offset[(serial, name)] = int(value)
            for name, (first, last, count) in state.get("pending", {}).items():
                self.pending[(serial, name)] = _Pending(int(first), int(last), int(count))
            for name, (kind, value, previous, reason) in state.get("held", {}).items():
                self.held[(serial, name)] = Event(serial, name, str(kind), value, previous, str(reason))
        except (TypeError, ValueError, AttributeError) as err:
            log.warning("printer %s: the stored meter state is unreadable (%s); its meters start anew "
                        "from the next reading", serial, err)
        self._saved[serial] = _text(self.export(serial))

    def unsaved(self) -> dict[str, dict[str, Any]]:
        """The exported state of every printer whose state changed since it was last stored."""
        out = {}
        for serial in self._checked:
            state = self.export(serial)
            if _text(state) != self._saved.get(serial, _EMPTY):
                out[serial] = state
        self._checked.clear()
        return out

    def saved(self, states: dict[str, dict[str, Any]]) -> None:
        """STATES (from unsaved()) are committed to the store; on failure, call again later."""
        for serial, state in states.items():
            self._saved[serial] = _text(state)

    def resave(self, states: dict[str, dict[str, Any]]) -> None:
        """STATES could not be stored: offer them again with the next unsaved()."""
        self._checked.update(states)

    # -- checking ---------------------------------------------------------------------------

    def check(self, serial: str, meters: list[Meter]) -> tuple[list[Meter], list[Event]]:
        """The meters that may be sent, and what happened to the others."""
        self._checked.add(serial)
        out: list[Meter] = []
        events: list[Event] = []
        seen = set()
        for m in meters:
            seen.add(m.name)
            value, event = self._one(serial, m)
            if value is not None:
                out.append(Meter(m.name, value, m.unit, m.bits))
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
        offset = self.offset.get(key, 0) if m.bits == 32 else 0
        value = m.value + offset
        if value >= previous:
            return self._accept(key, value, self._came_back(serial, m.name, previous, value))
        # only a value that came from a 32-bit counter (and was one before) can have wrapped
        wraps = m.bits == 32 and previous - offset < WRAP
        usage, why = counter_usage(previous - offset, m.value) if wraps else (None, None)
        if why == "wrap32" and usage is not None:
            self.offset[key] = offset + WRAP
            return self._accept(key, previous + usage, Event(
                serial, m.name, "wrap32", previous + usage, previous,
                f"32-bit counter wrapped ({(previous - offset) % WRAP:,} -> {m.value:,}); "
                f"counting on at {previous + usage:,}"))
        return self._hold(serial, m.name, previous, m.value)

    def _accept(self, key: Key, value: int, event: Event | None) -> tuple[int, Event | None]:
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

    def _hold(self, serial: str, name: str, previous: int, raw: int) -> tuple[int | None, Event | None]:
        """RAW (as read, without wrap offset) is below the last accepted value: hold it, or confirm a reset."""
        key = (serial, name)
        pending = self.pending.get(key)
        if pending is None or raw < pending.last:
            pending = self.pending[key] = _Pending(raw, raw)
        else:
            pending.count += 1
            pending.last = raw
        if pending.count >= CONFIRM:
            self.pending.pop(key)
            self.held.pop(key, None)
            self.offset.pop(key, None)   # a new counter: the old one's wraps do not carry over
            self._set(key, raw)
            return raw, Event(serial, name, "reset", raw, previous,
                              f"reset: went from {previous:,} to {pending.first:,}, confirmed by {CONFIRM} reads; "
                              f"counting from {raw:,} now")
        word = "dropped to 0" if raw == 0 else f"went back to {raw:,}"
        event = Event(serial, name, "held", raw, previous,
                      f"{word} from {previous:,}: held back, not billed, until the next reads confirm "
                      f"a reset or show a bad read ({pending.count}/{CONFIRM})")
        self.held[key] = event
        return None, event

    def open_events(self) -> list[Event]:
        """What is held back or missing now, for `meterbox status`."""
        return list(self.held.values())


def _text(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


_EMPTY = _text({"accepted": {}, "offset": {}, "pending": {}, "held": {}})
