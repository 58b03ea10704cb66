"""Poll one printer: a few full PDUs in, one Device and one Reading out.

Round trips: one GET for every scalar (identity and vendor meters) and one GETBULK
walking the Printer-MIB and Host Resources columns side by side. The first poll of a
printer needs one more GET (its vendor profile is known only after sysObjectID) and
learns the table sizes, so later polls ask for exactly enough rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from meterbox.errors import NotAPrinter
from meterbox.profiles import loader
from meterbox.profiles.decoders import DECODERS
from meterbox.profiles.loader import Profile
from meterbox.reading import Device, Meter, Reading, Supply
from meterbox.snmp import SnmpClient, Target, Value, text

log = logging.getLogger(__name__)


@dataclass
class Hint:
    """What an earlier poll learned about a printer, so the next one needs fewer round trips."""

    sys_object_id: str | None = None
    rows: int = 12
    has_pwg: bool | None = None


@dataclass(frozen=True)
class Source:
    """Where a meter or supply came from, for `meterbox poll --explain`."""

    name: str
    oid: str
    raw: object
    rule: str


@dataclass
class PollResult:
    device: Device
    reading: Reading
    explain: list[Source] = field(default_factory=list)
    requests: int = 0


class Snapshot:
    """The raw values of one poll: scalars by OID, columns by name -> {index: value}."""

    def __init__(self, scalars: dict[str, Value], columns: dict[str, dict[str, Value]]) -> None:
        self.scalars = scalars
        self.columns = columns

    def column(self, key: str) -> dict[str, Value]:
        return self.columns.get(loader.standard().columns[key], {})


async def read_printer(client: SnmpClient, target: Target, hint: Hint | None = None,
                       clock: Callable[[], float] = time.time, strict: bool = True) -> PollResult:
    """Read identity, meters and supplies of the printer at TARGET.

    With STRICT, a device that shows no sign of being a printer raises NotAPrinter.
    """
    std = loader.standard()
    hint = hint or Hint()
    before = client.requests
    ident = std["identity"]
    base = [ident["sys_object_id"], ident["sys_descr"], *ident["serial"], *ident["model"]]
    profile = loader.match(hint.sys_object_id)
    columns = list(std.columns.values())
    if hint.has_pwg is None:
        columns.append(std["pwg"]["probe"])
    scalars_task = client.get(target, base + (profile.scalar_oids() if profile else []))
    walk_task = client.walk(target, columns, max_repetitions=hint.rows)
    scalars, walked = await asyncio.gather(scalars_task, walk_task)
    sys_oid = text(scalars.get(ident["sys_object_id"]))
    actual = loader.match(sys_oid)
    if actual and actual is not profile:
        scalars.update(await client.get(target, actual.scalar_oids()))
    profile = actual
    if hint.has_pwg is None:
        hint.has_pwg = bool(walked.pop(std["pwg"]["probe"], None))
    if hint.has_pwg:
        walked.update(await _walk_pwg(client, target))
    snap = Snapshot(scalars, walked)
    if strict:
        _check_is_printer(snap, target)
    hint.sys_object_id = sys_oid
    hint.rows = max([len(v) for v in walked.values()] + [1]) + 1
    explain: list[Source] = []
    device = identify(snap, profile, explain)
    reading = Reading(serial=device.serial, read_at=clock(),
                      meters=meters(snap, profile, explain), supplies=supplies(snap, explain))
    return PollResult(device, reading, explain, client.requests - before)


async def _walk_pwg(client: SnmpClient, target: Target) -> dict[str, dict[str, Value]]:
    pwg = loader.standard()["pwg"]
    return await client.walk(target, [pwg["key_service_type"], *pwg["meters"]], max_repetitions=12)


def _check_is_printer(snap: Snapshot, target: Target) -> None:
    """Only printers are read: Printer-MIB present, or an hrDevicePrinter row."""
    std = loader.standard()
    if snap.column("marker_life") or snap.column("supply_level") or snap.column("supply_type"):
        return
    if any(text(v) == std["hr_device_printer"] for v in snap.column("hr_device_type").values()):
        return
    if any(snap.scalars.get(o) for o in std["identity"]["serial"]):
        return
    raise NotAPrinter(f"device at {target.address} answers SNMP but is not a printer "
                      "(no Printer-MIB, no hrDevicePrinter); it is ignored")


_JUNK_SERIAL = re.compile(r"^(0+|x+|unknown|n/?a|none|serial ?number|\?+)$", re.I)


def clean_serial(value: Value | None) -> str | None:
    """A serial as printed on the label: printable, trimmed, not a placeholder."""
    if isinstance(value, bytes):
        value = bytes(b for b in value if 0x20 <= b < 0x7F)  # HP PML adds a binary prefix
    serial = text(value)
    if not serial or _JUNK_SERIAL.match(serial):
        return None
    return serial


def identify(snap: Snapshot, profile: Profile | None, explain: list[Source]) -> Device:
    """Serial, manufacturer and model: vendor OIDs first, then the standard MIBs."""
    std = loader.standard()
    ident = std["identity"]
    serial = None
    for oid in [*(profile.serial if profile else ()), *ident["serial"]]:
        if serial := clean_serial(snap.scalars.get(oid)):
            explain.append(Source("serial", oid, snap.scalars[oid], profile.name if profile and oid in profile.serial else "standard"))
            break
    sys_oid = text(snap.scalars.get(ident["sys_object_id"]))
    manufacturer = profile.manufacturer if profile else None
    if not manufacturer and sys_oid and sys_oid.startswith("1.3.6.1.4.1."):
        manufacturer = std.int_table("manufacturers").get(int(sys_oid.split(".")[6]))
    model = _model(snap, profile, manufacturer)
    if not manufacturer and model:
        manufacturer = model.split()[0]
        model = model[len(manufacturer):].strip() or model
    return Device(serial=serial or "", manufacturer=manufacturer, model=model,
                  sys_object_id=sys_oid, profile=profile.name if profile else "standard")


def _model(snap: Snapshot, profile: Profile | None, manufacturer: str | None) -> str | None:
    std = loader.standard()
    candidates = [snap.scalars.get(o) for o in (profile.model if profile else ())]
    types = snap.column("hr_device_type")
    descrs = snap.column("hr_device_descr")
    candidates += [descrs.get(i) for i, t in types.items() if text(t) == std["hr_device_printer"]]
    candidates += [snap.scalars.get(o) for o in std["identity"]["model"]]
    for raw in candidates:
        model = text(raw)
        if model:
            if manufacturer and model.lower().startswith(manufacturer.lower() + " "):
                model = model[len(manufacturer) + 1:]
            return model.removesuffix(" series").strip()
    return None


def meters(snap: Snapshot, profile: Profile | None, explain: list[Source]) -> list[Meter]:
    """Vendor meters first (they are the billing truth), then PWG, then prtMarkerLifeCount."""
    std = loader.standard()
    found: dict[str, Meter] = {}

    def add(name: str, value: int, unit: str, source: Source) -> None:
        if name not in found:
            found[name] = Meter(name, value, unit)
            explain.append(source)

    for rule in profile.meters if profile else ():
        raw = snap.scalars.get(rule.oid)
        if raw is None:
            continue
        decoded = DECODERS[rule.decode](raw)
        if isinstance(decoded, dict):
            for code, name in rule.words.items():
                if code in decoded:
                    add(name, decoded[code], rule.unit, Source(name, rule.oid, raw, f"{profile.name}: {rule.decode} word {code}"))  # type: ignore[union-attr]
        elif decoded is not None and rule.name:
            add(rule.name, decoded, rule.unit, Source(rule.name, rule.oid, raw, f"{profile.name}: {rule.decode}"))  # type: ignore[union-attr]
    _pwg_meters(snap, add)
    units = std.int_table("counter_units")
    totals = std.int_table("counter_totals")
    unit_col = snap.column("marker_unit")
    life_oid = std.columns["marker_life"]
    for n, (index, raw) in enumerate(sorted(snap.column("marker_life").items(), key=_index_key)):
        if not isinstance(raw, int) or raw < 0:
            continue
        code = unit_col.get(index)
        unit = units.get(code, "impressions") if isinstance(code, int) else "impressions"
        name = "marker.life" if n == 0 else f"marker.life.{n + 1}"
        add(name, raw, unit, Source(name, f"{life_oid}.{index}", raw, "standard: prtMarkerLifeCount"))
        if n == 0 and isinstance(code, int) and code in totals:
            add(totals[code], raw, unit, Source(totals[code], f"{life_oid}.{index}", raw,
                                                "standard: prtMarkerLifeCount (no vendor total)"))
    return list(found.values())


def _pwg_meters(snap: Snapshot, add: Callable[[str, int, str, Source], None]) -> None:
    pwg = loader.standard()["pwg"]
    keys = snap.columns.get(pwg["key_service_type"], {})
    system = [k for k, v in keys.items() if v == pwg["system_totals"]]
    if not system:
        return
    for column, name in pwg["meters"].items():
        index = system[0] + pwg["suffix"]
        raw = snap.columns.get(column, {}).get(index)
        if isinstance(raw, int) and raw >= 0:
            add(name, raw, "impressions" if name.startswith("impressions") else "sheets",
                Source(name, f"{column}.{index}", raw, "standard: PWG Imaging System Counter MIB"))


def _index_key(item: tuple[str, object]) -> tuple[int, ...]:
    return tuple(int(p) for p in item[0].split(".") if p.isdigit())


def supplies(snap: Snapshot, explain: list[Source]) -> list[Supply]:
    """prtMarkerSuppliesTable rows as canonical supplies; -1/-2/-3 kept as states."""
    std = loader.standard()
    kinds = std.int_table("supply_kinds")
    levels = snap.column("supply_level")
    result: list[Supply] = []
    seen: dict[str, int] = {}
    for index, raw_level in sorted(levels.items(), key=_index_key):
        descr = f" {(text(snap.column('supply_descr').get(index)) or '').lower()} "
        kind = kinds.get(_int(snap.column("supply_type").get(index)) or 1, "other")
        if kind == "other":
            kind = next((k for k, words in std["kind_words"].items() if any(w in descr for w in words)), kind)
        colour = _colour(snap, index, descr)
        base = f"{kind}.{colour}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}.{seen[base]}"
        level, state = supply_level(_int(raw_level), _int(snap.column("supply_max").get(index)),
                                    _int(snap.column("supply_unit").get(index)), std["low_percent"])
        result.append(Supply(name, level, state))
        explain.append(Source(name, f"{std.columns['supply_level']}.{index}", raw_level,
                              f"standard: prtMarkerSupplies {text(snap.column('supply_descr').get(index))!r}"))
    return result


def _int(value: Value | None) -> int | None:
    return value if isinstance(value, int) else None


def supply_level(level: int | None, max_capacity: int | None, unit: int | None,
                 low: int = 10) -> tuple[int | None, str]:
    """Percent remaining (against max) and state; None where the printer gives no percent."""
    if level is None or level == -2:
        return None, "unknown"
    if level == -3:
        return None, "some-remaining"
    if level < 0:
        return None, "unknown"
    if max_capacity is not None and max_capacity > 0:
        percent = level * 100 / max_capacity
    elif unit == loader.standard()["supply_unit_percent"]:
        percent = float(level)
    else:
        return None, "empty" if level == 0 else "unknown"
    value = min(100, int(percent + 0.5))
    if value == 0 and level > 0:
        value = 1  # never report "act now" while some supply is left
    state = "empty" if level == 0 else ("low" if value <= low else "ok")
    return value, state


def _colour(snap: Snapshot, index: str, descr: str) -> str:
    """The supply's colour from the colorant table, else from words in its description."""
    std = loader.standard()
    colorant = _int(snap.column("supply_colorant").get(index))
    if colorant:
        marker = index.split(".")[0]
        value = (text(snap.column("colorant_value").get(f"{marker}.{colorant}")) or "").lower()
        for colour in std["colour_words"]:
            if colour in value:
                return colour
    for colour, words in std["colour_words"].items():
        if any(w in descr for w in words):
            return colour
    return "none"
