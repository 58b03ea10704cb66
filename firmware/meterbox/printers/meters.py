"""Billing meters: vendor counters first (the billing truth), then PWG, then prtMarkerLifeCount."""

from __future__ import annotations

import logging
import re
from fnmatch import fnmatchcase
from typing import Callable

from meterbox.printers.profiles import loader
from meterbox.logs import log_once
from meterbox.printers.profiles.decoders import DECODERS
from meterbox.printers.profiles.loader import DeviceRule, MeterRule, Profile, SumRule, TableRule, applies
from meterbox.printers.reading import Meter
from meterbox.printers.snapshot import Snapshot, Source, index_key
from meterbox.printers.snmp import Value, text

Add = Callable[[str, int, str, Source], None]
log = logging.getLogger(__name__)


def meters(snap: Snapshot, profile: Profile | None, explain: list[Source], model: str | None = None) -> list[Meter]:
    """Vendor meters first (they are the billing truth), then PWG, then prtMarkerLifeCount."""
    found: dict[str, Meter] = {}
    sources: dict[str, Source] = {}

    def add(name: str, value: int, unit: str, source: Source) -> None:
        if name not in found:
            # A value read straight from SNMP knows its width (snmp.Int32/Int64); sums and blobs do not.
            found[name] = Meter(name, int(value), unit, getattr(value, "bits", None))
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
    for name in [n for n, m in found.items() if _mono_zero(profile, model, m)]:
        explain.remove(sources[name])
        del found[name]
    return list(found.values())


def _mono_zero(profile: Profile | None, model: str | None, meter: Meter) -> bool:
    """A colour column a monochrome model answers with 0 (profile [mono]): no meter of that printer."""
    mono = profile.mono if profile else None
    return bool(mono and meter.value == 0 and meter.name in mono.meters
                and model and re.search(mono.models, model, re.I))


def _unit(name: str, unit: str | None = None) -> str:
    """The rule's unit, else the canonical family's, else the one a vendor meter's name says."""
    std = loader.standard()
    if unit or (unit := std["meter_units"].get(name.split(".")[0])):
        return unit
    words = set(name.rsplit(".", 1)[-1].split("-"))
    return next((u for u, ws in std["vendor_units"].items() if words & set(ws)), "impressions")


def _count(raw: Value | None) -> int | None:
    return DECODERS["int"](raw) if raw is not None else None  # type: ignore[return-value]


def _counted(raw: Value) -> int:
    """A count known to be there (its width kept: an Int32 0 stays an Int32)."""
    n = _count(raw)
    return 0 if n is None else n


def _scalar_meters(snap: Snapshot, owner: str, rule: MeterRule, add: Add) -> None:
    raw = snap.scalars.get(rule.oid)
    if raw is None:
        return
    decoded = DECODERS[rule.decode](raw)
    if decoded is None and not isinstance(raw, int):  # a negative int is a Printer-MIB state, not an error
        shown = raw[:24] if isinstance(raw, (bytes, str)) else raw
        log_once(log, ("meter", rule.oid), "%s from %s: the printer sent %r (%d bytes), which is not %s; "
                 "the meter is left out (logged once)", rule.name or rule.decode, rule.oid, shown, len(raw),
                 "a count" if rule.decode == "int" else f"what decoder {rule.decode} reads")
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
            for index, raw in sorted(values.items(), key=index_key) if _count(raw) is not None]
    what = "key " + "+".join(k.rsplit(".", 1)[-1] for k in rule.key) if rule.key else "index"
    for pattern, name in rule.rows.items():
        hit = next(((i, raw) for i, k, raw in rows if fnmatchcase(k, pattern.lower())), None)
        if hit:
            add(name, _counted(hit[1]), _unit(name, rule.unit),
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
            add(name, _counted(raw), _unit(name, rule.unit), Source(name, oid, raw, f"{owner}: hrDevice cell {key}"))
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
    for n, (index, raw) in enumerate(sorted(snap.column("marker_life").items(), key=index_key)):
        if not isinstance(raw, int) or raw < 0:
            continue
        code = unit_col.get(index)
        unit = units.get(code, "impressions") if isinstance(code, int) else "impressions"
        name = "marker.life" if n == 0 else f"marker.life.{n + 1}"
        add(name, raw, unit, Source(name, f"{life_oid}.{index}", raw, "standard: prtMarkerLifeCount"))
        if n == 0 and isinstance(code, int) and code in totals:
            add(totals[code], raw, unit, Source(totals[code], f"{life_oid}.{index}", raw,
                                                "standard: prtMarkerLifeCount (no vendor total)"))
