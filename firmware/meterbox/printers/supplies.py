"""Supplies: prtMarkerSuppliesTable rows and vendor levels as canonical names, percent and state."""

from __future__ import annotations

from typing import Iterable

from meterbox.printers.profiles import loader
from meterbox.printers.profiles.decoders import DECODERS
from meterbox.printers.profiles.loader import Profile, applies
from meterbox.printers.reading import Supply
from meterbox.printers.snapshot import Snapshot, Source, index_key
from meterbox.printers.snmp import Value, text


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
    for index, raw_level in sorted(snap.column("supply_level").items(), key=index_key):
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
