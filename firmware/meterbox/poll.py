"""Poll one printer: a few full PDUs in, one Device and one Reading out.

Round trips: one GET for every scalar (identity, vendor meters, supply blobs) and one
GETBULK walking the Printer-MIB and Host Resources columns and the vendor profile's
tables side by side. The first poll of a printer asks one GET more before those (who is
it: sysObjectID, and the probe OIDs of families without one) and learns the table sizes,
the PWG counters and the hrDevice roles, so later polls ask for exactly enough.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Callable, Iterable, Mapping

from meterbox.errors import NotAPrinter
from meterbox.profiles import loader
from meterbox.profiles.decoders import DECODERS
from meterbox.profiles.loader import DeviceRule, MeterRule, Profile, SumRule, TableRule, applies
from meterbox.reading import Device, Meter, Reading, Supply
from meterbox.snmp import SnmpClient, Target, Value, text

log = logging.getLogger(__name__)


@dataclass
class Hint:
    """What an earlier poll learned about a printer, so the next one needs fewer round trips."""

    sys_object_id: str | None = None
    rows: int = 12
    has_pwg: bool | None = None
    known: bool = False                      # identity read: the profile below is the printer's
    profile: Profile | None = None
    hr_roles: dict[str, str] = field(default_factory=dict)   # hrDeviceIndex -> printer/copier/...


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
    """The raw values of one poll: scalars by OID, columns by root OID -> {index: value}."""

    def __init__(self, scalars: dict[str, Value], columns: dict[str, dict[str, Value]]) -> None:
        self.scalars = scalars
        self.columns = columns

    def column(self, key: str) -> dict[str, Value]:
        return self.columns.get(loader.standard().columns[key], {})

    @classmethod
    def from_records(cls, records: Mapping[str, Value], roots: Iterable[str]) -> Snapshot:
        """What a poll would see of a recording: every OID as a scalar, each root as a column."""
        columns = {r: {oid[len(r) + 1:]: v for oid, v in records.items() if oid.startswith(r + ".")}
                   for r in roots}
        return cls(dict(records), columns)


def identity_oids() -> list[str]:
    ident = loader.standard()["identity"]
    return [ident["sys_object_id"], ident["sys_descr"], *ident["serial"], *ident["model"]]


def walk_roots(profile: Profile | None, has_pwg: bool | None) -> list[str]:
    """The columns of the one GETBULK: standard, PWG (or its probe), then the profile's tables.

    The list stays the same from poll to poll (the PWG probe too, where PWG is absent), so
    SnmpClient.walk can read the rows it remembers with one GET instead of walking again.
    """
    std = loader.standard()
    roots = list(std.columns.values())
    if has_pwg:
        roots += [std["pwg"]["key_service_type"], *std["pwg"]["meters"]]
    else:
        roots.append(std["pwg"]["probe"])
    return roots + (profile.walk_roots() if profile else [])


def select_profile(scalars: Mapping[str, Value]) -> Profile | None:
    ident = loader.standard()["identity"]
    return loader.select(text(scalars.get(ident["sys_object_id"])), text(scalars.get(ident["sys_descr"])), scalars)


async def read_printer(client: SnmpClient, target: Target, hint: Hint | None = None,
                       clock: Callable[[], float] = time.time, strict: bool = True) -> PollResult:
    """Read identity, meters and supplies of the printer at TARGET.

    With STRICT, a device that shows no sign of being a printer raises NotAPrinter.
    """
    hint = hint or Hint()
    before = client.requests
    scalars, walked = await _read(client, target, hint)
    sys_oid = text(scalars.get(loader.standard()["identity"]["sys_object_id"]))
    if hint.sys_object_id != sys_oid:  # another printer answers at this address now: start over
        log.info("printer at %s now reports sysObjectID %s; reading its identity again", target.address, sys_oid)
        hint.__dict__.update(Hint().__dict__)
        scalars, walked = await _read(client, target, hint)
    snap = Snapshot(scalars, walked)
    hint.rows = max([len(v) for v in walked.values()] + [1]) + 1
    device, reading, explain = interpret(snap, hint.profile, clock())
    if strict:
        _check_is_printer(snap, target, reading)
    return PollResult(device, reading, explain, client.requests - before)


async def _read(client: SnmpClient, target: Target, hint: Hint) -> tuple[dict[str, Value], dict[str, dict[str, Value]]]:
    """One GET and one GETBULK (plus, on a first poll, the identity GET before them)."""
    first: dict[str, Value] = {}
    if not hint.known:
        first = await client.get(target, identity_oids() + loader.probe_oids())
        hint.profile, hint.known = select_profile(first), True
        hint.sys_object_id = text(first.get(loader.standard()["identity"]["sys_object_id"]))
    profile = hint.profile
    wanted = (profile.scalar_oids(hint.hr_roles) if profile else []) + ([] if first else identity_oids())
    roots = walk_roots(profile, hint.has_pwg)
    scalars, walked = await asyncio.gather(client.get(target, wanted), client.walk(target, roots, hint.rows))
    scalars.update(first)
    if hint.has_pwg is None:
        hint.has_pwg = bool(walked.get(loader.standard()["pwg"]["probe"]))
        if hint.has_pwg:
            walked.update(await _walk_pwg(client, target))
    if profile:
        scalars.update(await _missing_cells(client, target, profile, hint, walked, wanted))
    return scalars, walked


async def _walk_pwg(client: SnmpClient, target: Target) -> dict[str, dict[str, Value]]:
    pwg = loader.standard()["pwg"]
    return await client.walk(target, [pwg["key_service_type"], *pwg["meters"]], max_repetitions=12)


async def _missing_cells(client: SnmpClient, target: Target, profile: Profile, hint: Hint,
                         walked: dict[str, dict[str, Value]], asked: list[str]) -> dict[str, Value]:
    """hrDevice cells (Xerox) at indexes this poll's hrDeviceTable revealed: one more GET, once."""
    hint.hr_roles = hr_roles(Snapshot({}, walked))
    done = set(asked)
    missing = [o for o in profile.scalar_oids(hint.hr_roles) if o not in done]
    return await client.get(target, missing) if missing and profile.devices else {}


def _check_is_printer(snap: Snapshot, target: Target, reading: Reading) -> None:
    """Only printers are read: Printer-MIB present, an hrDevicePrinter row, or vendor page meters."""
    std = loader.standard()
    if snap.column("marker_life") or snap.column("supply_level") or snap.column("supply_type") or reading.meters:
        return
    if any(text(v) == std["hr_device_printer"] for v in snap.column("hr_device_type").values()):
        return
    if any(snap.scalars.get(o) for o in std["identity"]["serial"]):
        return
    raise NotAPrinter(f"device at {target.address} answers SNMP but is not a printer "
                      "(no Printer-MIB, no hrDevicePrinter); it is ignored")


def interpret(snap: Snapshot, profile: Profile | None, read_at: float) -> tuple[Device, Reading, list[Source]]:
    """The pure part of a poll: raw values -> device, meters and supplies, with their sources."""
    explain: list[Source] = []
    device = identify(snap, profile, explain)
    reading = Reading(serial=device.serial, read_at=read_at,
                      meters=meters(snap, profile, explain, device.model),
                      supplies=supplies(snap, explain, profile, device.model))
    return device, reading, explain


# -- identity -----------------------------------------------------------------------------

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
    """Serial, manufacturer and model: vendor OIDs first, then the standard MIBs, then sysDescr.

    The manufacturer is the brand the device names (a Gestetner is sold as a Gestetner though
    the ricoh profile reads it), else the profile's, else sysDescr's, else the IANA enterprise's.
    """
    ident = loader.standard()["identity"]
    serial = _serial(snap, profile, explain)
    sys_oid = text(snap.scalars.get(ident["sys_object_id"]))
    sys_descr = text(snap.scalars.get(ident["sys_descr"]))
    brand, model = _model(snap, profile, sys_descr)
    manufacturer = (brand or (profile.manufacturer if profile else None)
                    or (split_brand(sys_descr)[0] if sys_descr else None) or _enterprise(sys_oid))
    return Device(serial=serial or "", manufacturer=manufacturer, model=model,
                  sys_object_id=sys_oid, profile=profile.name if profile else "standard")


def _serial(snap: Snapshot, profile: Profile | None, explain: list[Source]) -> str | None:
    rules: list[tuple[str, str | None, str]] = \
        [(r.oid, r.decode, profile.name) for r in profile.serial] if profile else []
    rules += [(oid, None, "standard") for oid in loader.standard()["identity"]["serial"]]
    for oid, decode, owner in rules:
        raw = snap.scalars.get(oid)
        value = DECODERS[decode](raw) if decode and raw is not None else raw
        if serial := clean_serial(value if isinstance(value, (str, bytes)) else None):
            explain.append(Source("serial", oid, raw, f"{owner}: serial" + (f" ({decode})" if decode else "")))
            return serial
    sys_descr = snap.scalars.get(loader.standard()["identity"]["sys_descr"])
    if serial := clean_serial(_descr(profile, text(sys_descr), "serial")):
        explain.append(Source("serial", loader.standard()["identity"]["sys_descr"], sys_descr,
                              f"{profile.name}: sysDescr pattern"))  # type: ignore[union-attr]
        return serial
    return None


def _enterprise(sys_oid: str | None) -> str | None:
    if sys_oid and sys_oid.lstrip(".").startswith("1.3.6.1.4.1."):
        return loader.standard().int_table("manufacturers").get(int(sys_oid.lstrip(".").split(".")[6]))
    return None


def split_brand(name: str) -> tuple[str | None, str]:
    """("HP", "LaserJet M130nw") from "HP LaserJet M130nw": a known brand at the start, and the rest."""
    brands: dict[str, str] = loader.standard()["brands"]
    lower = name.lower()
    for key in sorted(brands, key=len, reverse=True):
        if lower.startswith(key) and (len(name) == len(key) or name[len(key)] in " -_"):
            return brands[key], name[len(key):].strip(" -_")
    return None, name


def _model(snap: Snapshot, profile: Profile | None, sys_descr: str | None) -> tuple[str | None, str | None]:
    """(brand, model): vendor model OIDs, hrDeviceDescr, prtGeneralPrinterName, then sysDescr."""
    named = _descr(profile, sys_descr, "brand")
    descr_brand = split_brand(named)[0] if named else None
    for raw in _model_candidates(snap, profile):
        if name := text(raw):
            brand, model = split_brand(name)
            return brand or descr_brand, _tidy(model)
    return descr_brand, _tidy(_descr(profile, sys_descr, "model") or "")


def _model_candidates(snap: Snapshot, profile: Profile | None) -> Iterable[Value | None]:
    std = loader.standard()
    for rule in profile.model if profile else ():
        raw = snap.scalars.get(rule.oid)
        decoded = DECODERS[rule.decode](raw) if raw is not None else None
        yield None if isinstance(decoded, dict) else decoded
    types, descrs = snap.column("hr_device_type"), snap.column("hr_device_descr")
    yield from (descrs.get(i) for i, t in sorted(types.items(), key=_index_key) if text(t) == std["hr_device_printer"])
    yield from (snap.scalars.get(o) for o in std["identity"]["model"])


def _descr(profile: Profile | None, sys_descr: str | None, group: str) -> str | None:
    """GROUP (brand, model or serial) from the first of the profile's sysDescr patterns that has it."""
    for pattern in profile.descr if profile and sys_descr else ():
        if (m := re.search(pattern, sys_descr or "")) and m.groupdict().get(group):
            return m.group(group).strip()
    return None


def _tidy(model: str) -> str | None:
    model = re.sub(r"\s+series$", "", model.strip(), flags=re.I)
    return re.sub(r"\s+", " ", model) or None


# -- meters -------------------------------------------------------------------------------

Add = Callable[[str, int, str, Source], None]


def meters(snap: Snapshot, profile: Profile | None, explain: list[Source], model: str | None = None) -> list[Meter]:
    """Vendor meters first (they are the billing truth), then PWG, then prtMarkerLifeCount."""
    found: dict[str, Meter] = {}
    sources: dict[str, Source] = {}

    def add(name: str, value: int, unit: str, source: Source) -> None:
        if name not in found:
            found[name] = Meter(name, value, unit)
            sources[name] = source
            explain.append(source)

    if profile:
        for rule in profile.meters:
            if applies(rule, model):
                _scalar_meters(snap, profile.name, rule, add)
        for device_rule in profile.devices:
            if applies(device_rule, model):
                _device_meters(snap, profile.name, device_rule, add)
        for table in profile.tables:
            if applies(table, model):
                _table_meters(snap, profile.name, table, add)
        for total in profile.sums:
            if applies(total, model):
                _sum_meter(found, sources, profile.name, total, add)
    _pwg_meters(snap, add)
    _marker_meters(snap, add)
    return list(found.values())


def _unit(name: str, unit: str | None = None) -> str:
    """The rule's unit, else the canonical family's, else the one a vendor meter's name says."""
    std = loader.standard()
    if unit or (unit := std["meter_units"].get(name.split(".")[0])):
        return unit
    words = set(name.rsplit(".", 1)[-1].split("-"))
    return next((u for u, ws in std["vendor_units"].items() if words & set(ws)), "impressions")


def _count(raw: Value | None) -> int | None:
    return DECODERS["int"](raw) if raw is not None else None  # type: ignore[return-value]


def _scalar_meters(snap: Snapshot, owner: str, rule: MeterRule, add: Add) -> None:
    raw = snap.scalars.get(rule.oid)
    if raw is None:
        return
    decoded = DECODERS[rule.decode](raw)
    if isinstance(decoded, dict):
        for code, name in rule.words.items():
            if code in decoded:
                add(name, decoded[code], _unit(name, rule.unit),
                    Source(name, rule.oid, raw, f"{owner}: {rule.decode} word {code}"))
    elif isinstance(decoded, int) and rule.name:
        add(rule.name, decoded, _unit(rule.name, rule.unit),
            Source(rule.name, rule.oid, raw, f"{owner}: scalar ({rule.decode})"))


def _add_sum(name: str, parts: list[tuple[str, Value]], unit: str, rule: str, add: Add) -> None:
    counts = [(oid, _count(raw)) for oid, raw in parts]
    good = [(oid, n) for oid, n in counts if n is not None]
    if good:
        add(name, sum(n for _, n in good), unit,
            Source(name, " + ".join(o for o, _ in good), [n for _, n in good], rule))


def _table_meters(snap: Snapshot, owner: str, rule: TableRule, add: Add) -> None:
    """Rows found by their key (type code, name, index), never by their position."""
    values = snap.columns.get(rule.column, {})
    keys = [snap.columns.get(k, {}) for k in rule.key]
    rows = [(index, ".".join(text(c.get(index)) or "" for c in keys).lower() if keys else index, raw)
            for index, raw in sorted(values.items(), key=_index_key) if _count(raw) is not None]
    what = "key " + "+".join(k.rsplit(".", 1)[-1] for k in rule.key) if rule.key else "index"
    for pattern, name in rule.rows.items():
        hit = next(((i, raw) for i, k, raw in rows if fnmatchcase(k, pattern.lower())), None)
        if hit:
            add(name, _count(hit[1]) or 0, _unit(name, rule.unit),
                Source(name, f"{rule.column}.{hit[0]}", hit[1], f"{owner}: table row by {what} {pattern!r}"))
    for name, patterns in rule.sums.items():
        parts = [(f"{rule.column}.{i}", raw) for i, k, raw in rows
                 if any(fnmatchcase(k, p.lower()) for p in patterns)]
        _add_sum(name, parts, _unit(name, rule.unit), f"{owner}: sum of table rows by {what} {patterns}", add)


def hr_roles(snap: Snapshot) -> dict[str, str]:
    """hrDeviceIndex -> role (printer, copier, scanner, fax) from hrDeviceDescr words and type."""
    std = loader.standard()
    roles: dict[str, str] = {}
    for index, descr in snap.column("hr_device_descr").items():
        words = f" {(text(descr) or '').lower()} "
        role = next((r for r, ws in std["hr_device_roles"].items() if any(w in words for w in ws)), None)
        if role is None and text(snap.column("hr_device_type").get(index)) == std["hr_device_printer"]:
            role = "printer"
        if role:
            roles[index] = role
    return roles


def _device_meters(snap: Snapshot, owner: str, rule: DeviceRule, add: Add) -> None:
    """Per-hrDevice cells (Xerox xcmHrDevDetailTable): <prefix>.<hrDeviceIndex of role>.<rest>."""
    by_key: dict[str, list[tuple[str, Value]]] = {}
    for oid, key in rule.oids(hr_roles(snap)).items():
        if _count(raw := snap.scalars.get(oid)) is not None:
            by_key.setdefault(key, []).append((oid, raw))  # type: ignore[arg-type]
    for key, name in rule.cells.items():
        if key in by_key:
            oid, raw = by_key[key][0]
            add(name, _count(raw) or 0, _unit(name, rule.unit), Source(name, oid, raw, f"{owner}: hrDevice cell {key}"))
    for name, keys in rule.sums.items():
        parts = [p for k in keys for p in by_key.get(k, [])]
        _add_sum(name, parts, _unit(name, rule.unit), f"{owner}: sum of hrDevice cells {keys}", add)


def _sum_meter(found: dict[str, Meter], sources: dict[str, Source], owner: str, rule: SumRule, add: Add) -> None:
    """A documented sum of meters already read (e.g. Kyocera black = print + copy + fax B&W)."""
    if rule.name in found or not all(p in found for p in rule.of):
        return
    add(rule.name, sum(found[p].value for p in rule.of), found[rule.of[0]].unit,
        Source(rule.name, " + ".join(sources[p].oid for p in rule.of), [found[p].value for p in rule.of],
               f"{owner}: sum of {' + '.join(rule.of)}"))


def _pwg_meters(snap: Snapshot, add: Add) -> None:
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


def _marker_meters(snap: Snapshot, add: Add) -> None:
    """prtMarkerLifeCount as marker.life[.n], and as the total where no vendor meter gave one."""
    std = loader.standard()
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


def _index_key(item: tuple[str, object]) -> tuple[int, ...]:
    return tuple(int(p) for p in item[0].split(".") if p.isdigit())


# -- supplies -----------------------------------------------------------------------------

def supplies(snap: Snapshot, explain: list[Source], profile: Profile | None = None,
             model: str | None = None) -> list[Supply]:
    """prtMarkerSuppliesTable rows as canonical supplies, then the profile's supply blobs.

    A vendor level replaces the standard row of the same name (Brother reports -3 "some
    remaining" in the Printer-MIB but a percent in its maintenance blob).
    """
    found: dict[str, tuple[Supply, Source]] = {}
    for supply, source in _standard_supplies(snap, profile, model):
        found[supply.name] = (supply, source)
    for supply, source in _vendor_supplies(snap, profile, model):
        found[supply.name] = (supply, source)
    explain.extend(source for _, source in found.values())
    return [supply for supply, _ in found.values()]


def _standard_supplies(snap: Snapshot, profile: Profile | None, model: str | None) -> Iterable[tuple[Supply, Source]]:
    std = loader.standard()
    seen: dict[str, int] = {}
    for index, raw_level in sorted(snap.column("supply_level").items(), key=_index_key):
        descr_text = text(snap.column("supply_descr").get(index))
        descr = f" {(descr_text or '').lower()} "
        kind = _kind(snap, index, descr, profile, model)
        base = f"{kind}.{_colour(snap, index, descr)}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}.{seen[base]}"
        level, state = supply_level(_int(raw_level), _int(snap.column("supply_max").get(index)),
                                    _int(snap.column("supply_unit").get(index)), std["low_percent"])
        yield Supply(name, level, state), Source(name, f"{std.columns['supply_level']}.{index}", raw_level,
                                                 f"standard: prtMarkerSupplies {descr_text!r}")


def _kind(snap: Snapshot, index: str, descr: str, profile: Profile | None, model: str | None) -> str:
    """prtMarkerSuppliesType, else the family's words (HP "Cartridge"), else the standard words."""
    std = loader.standard()
    kind: str = std.int_table("supply_kinds").get(_int(snap.column("supply_type").get(index)) or 1, "other")
    if kind != "other":
        return kind
    for rule in profile.supply_kinds if profile else ():
        if applies(rule, model) and any(w.lower() in descr for w in rule.words):
            return rule.kind
    return next((k for k, words in std["kind_words"].items() if any(w in descr for w in words)), kind)


def _vendor_supplies(snap: Snapshot, profile: Profile | None, model: str | None) -> Iterable[tuple[Supply, Source]]:
    done: set[str] = set()
    for rule in profile.supplies if profile else ():
        raw = snap.scalars.get(rule.oid)
        decoded = DECODERS[rule.decode](raw) if raw is not None and applies(rule, model) else None
        words = decoded if isinstance(decoded, dict) else {}
        for code, name in rule.words.items():
            if code in words and name not in done:
                done.add(name)
                percent = round(words[code] / rule.divide)
                level, state = supply_level(min(percent, 100), 100, None, loader.standard()["low_percent"])
                yield Supply(name, level, state), Source(name, rule.oid, raw, f"{profile.name}: {rule.decode} "  # type: ignore[union-attr]
                                                         f"word {code}" + (f" / {rule.divide}" if rule.divide != 1 else ""))


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
                return str(colour)
    for colour, words in std["colour_words"].items():
        if any(w in descr for w in words):
            return str(colour)
    return "none"
