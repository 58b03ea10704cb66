"""What one poll of one printer yields, and its wire form (DESIGN.md, wire contract v1)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now_ms: int | None = None) -> str:
    """A ULID: sortable by time, unique without coordination, stable once stored."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(25, -1, -1))


def utc_iso(ts: float) -> str:
    """Seconds since the epoch as the wire's UTC timestamp, e.g. 2026-11-24T10:00:00Z."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Device:
    """A printer's identity. The serial is the identity: never the address."""

    serial: str
    manufacturer: str | None
    model: str | None
    sys_object_id: str | None = None
    profile: str = "standard"

    def payload(self) -> dict[str, object]:
        """The `devices` message: device data only, no addresses."""
        return {"serial": self.serial, "manufacturer": self.manufacturer, "model": self.model}


@dataclass(frozen=True)
class Meter:
    """A lifetime counter. BITS is the width of the SNMP counter it was read from (32 or 64), so
    that only a 32-bit counter is taken to wrap; None for sums, decoded blobs and strings."""

    name: str
    value: int
    unit: str
    bits: int | None = None


@dataclass(frozen=True)
class Supply:
    name: str
    level: int | None
    state: str            # ok, low, empty, unknown, some-remaining
    unit: str = "percent"


@dataclass
class Reading:
    """One poll of one printer, as stored and as sent."""

    serial: str
    read_at: float
    meters: list[Meter] = field(default_factory=list)
    supplies: list[Supply] = field(default_factory=list)
    clock: str = "ntp"    # ntp; "held" until the clock syncs (stored only); then corrected or unsynced
    id: str = field(default_factory=new_id)
    mono: float | None = None   # CLOCK_BOOTTIME at read_at: local only, to correct read_at after sync
    boot: str | None = None     # the boot that mono counts in

    def payload(self, box_id: str) -> dict[str, object]:
        """Exactly the fields of the wire contract, nothing else."""
        return {
            "v": 1,
            "id": self.id,
            "box": box_id,
            "serial": self.serial,
            "read_at": utc_iso(self.read_at),
            "clock": "unsynced" if self.clock == "held" else self.clock,
            "meters": [{"name": m.name, "value": m.value, "unit": m.unit} for m in self.meters],
            "supplies": [
                {"name": s.name, "level": s.level, "unit": s.unit, "state": s.state}
                for s in self.supplies
            ],
        }
