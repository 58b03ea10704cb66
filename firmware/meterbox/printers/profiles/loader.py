"""Loads profile data files and picks the one that applies to a printer.

A vendor profile applies by sysObjectID prefix (longest wins). Where the printer gives no
sysObjectID, or one no profile claims, a profile may still apply by a probe OID that only
its family answers (`match_probe`) or by its sysDescr (`match_descr`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Union

from meterbox.errors import ConfigError
from meterbox.printers.profiles import schema

DATA = Path(__file__).with_name("data")
Value = Union[int, bytes, str]


@dataclass(frozen=True)
class ValueRule:
    """An identity OID (serial or model) and how to read its text."""

    oid: str
    decode: str = "text"


@dataclass(frozen=True)
class MeterRule:
    """One vendor OID -> canonical meter(s). With `words`, the decoder yields several values."""

    oid: str
    name: str | None = None
    unit: str | None = None
    decode: str = "int"
    words: dict[str, str] = field(default_factory=dict)
    models: str | None = None


@dataclass(frozen=True)
class TableRule:
    """A walked table: rows found by a key column (type, name) or by their index, never by position.

    The key of a row is its key column values joined by "." (or the row index without key
    columns); `rows` maps a key pattern (fnmatch, case-insensitive) to a meter from the first
    matching row, `sums` adds every row matching any of a meter's patterns into that meter.
    """

    column: str
    key: tuple[str, ...] = ()
    rows: dict[str, str] = field(default_factory=dict)
    sums: dict[str, list[str]] = field(default_factory=dict)
    unit: str | None = None
    models: str | None = None

    @property
    def roots(self) -> tuple[str, ...]:
        return (self.column, *self.key)


@dataclass(frozen=True)
class DeviceRule:
    """Cells of a per-hrDevice table (<prefix>.<hrDeviceIndex>.<rest>), read by GET.

    A cell key is "<role>.<rest>"; the role's hrDeviceIndex comes from hrDeviceTable
    (type/description), else from `roles`, the indexes the vendor documents per family.
    """

    prefix: str
    roles: dict[str, tuple[int, ...]] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)
    sums: dict[str, list[str]] = field(default_factory=dict)
    unit: str | None = None
    models: str | None = None

    def oids(self, found: Mapping[str, str]) -> dict[str, str]:
        """{OID: cell key} for hrDevice roles FOUND ({index: role}), documented indexes otherwise."""
        result: dict[str, str] = {}
        for key in dict.fromkeys([*self.cells, *(k for keys in self.sums.values() for k in keys)]):
            role, _, rest = key.partition(".")
            indexes = [i for i, r in found.items() if r == role] or [str(i) for i in self.roles.get(role, ())]
            for index in indexes:
                result[f"{self.prefix}.{index}.{rest}"] = key
        return result


@dataclass(frozen=True)
class SumRule:
    """A meter that is the sum of others, where the vendor documents the arithmetic."""

    name: str
    of: tuple[str, ...]
    models: str | None = None


@dataclass(frozen=True)
class SupplyRule:
    """A vendor blob of supply levels: word code -> supply, value / divide = percent."""

    oid: str
    decode: str
    words: dict[str, str]
    divide: int = 1
    models: str | None = None


@dataclass(frozen=True)
class SupplyKindRule:
    """Words in a supply description that name its kind for this family (HP "Cartridge" = toner)."""

    kind: str
    words: tuple[str, ...]
    models: str | None = None


@dataclass(frozen=True)
class MonoRule:
    """Monochrome models of a family that still answer its colour columns, with 0: those meters are left out."""

    models: str
    meters: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """A vendor family's identity OIDs, meters and supply quirks, layered over the standard profile."""

    name: str
    match: tuple[str, ...]
    manufacturer: str
    covers: str = ""
    match_descr: tuple[str, ...] = ()
    match_probe: tuple[str, tuple[str, ...]] | None = None
    printer_only: bool = False
    serial: tuple[ValueRule, ...] = ()
    model: tuple[ValueRule, ...] = ()
    descr: tuple[str, ...] = ()
    model_pattern: tuple[str, ...] = ()
    meters: tuple[MeterRule, ...] = ()
    tables: tuple[TableRule, ...] = ()
    devices: tuple[DeviceRule, ...] = ()
    sums: tuple[SumRule, ...] = ()
    supplies: tuple[SupplyRule, ...] = ()
    supply_kinds: tuple[SupplyKindRule, ...] = ()
    mono: MonoRule | None = None
    recordings: tuple[str, ...] = ()
    source: Path | None = None

    def scalar_oids(self, hr_roles: Mapping[str, str] | None = None) -> list[str]:
        """Everything read by GET: identity, scalar meters, supply blobs and hrDevice cells."""
        oids = [r.oid for r in (*self.serial, *self.model)]
        oids += [m.oid for m in self.meters] + [s.oid for s in self.supplies]
        for rule in self.devices:
            oids += rule.oids(hr_roles or {})
        return list(dict.fromkeys(oids))

    def walk_roots(self) -> list[str]:
        """Table columns walked beside the standard ones, in the same GETBULK."""
        return list(dict.fromkeys(root for t in self.tables for root in t.roots))


def applies(rule: Any, model: str | None) -> bool:
    """A rule with `models` applies only to models matching that pattern."""
    pattern = getattr(rule, "models", None)
    return pattern is None or bool(model and re.search(pattern, model, re.I))


@dataclass(frozen=True)
class Standard:
    """The standard profile's tables (Printer-MIB, Host Resources, PWG), read from standard.toml."""

    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def columns(self) -> dict[str, str]:
        columns: dict[str, str] = self.data["columns"]
        return columns

    def int_table(self, key: str) -> dict[int, str]:
        return {int(k): v for k, v in self.data[key].items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"profile {path}: {err}; fix the TOML syntax") from err


def _values(items: list[Any]) -> tuple[ValueRule, ...]:
    return tuple(ValueRule(i) if isinstance(i, str) else ValueRule(**i) for i in items)


def _rules(cls: type, items: list[dict[str, Any]], **tuples: bool) -> tuple[Any, ...]:
    """Rule dataclasses from TOML tables; list values named in TUPLES become tuples."""
    out = []
    for item in items:
        fixed = {k: tuple(v) if k in tuples else v for k, v in item.items()}
        if cls is DeviceRule:
            fixed["roles"] = {k: tuple(v) for k, v in item["roles"].items()}
        out.append(cls(**fixed))
    return tuple(out)


def build(path: Path, data: dict[str, Any]) -> Profile:
    """A Profile from a file that passed the schema check."""
    ident = data.get("identity", {})
    probe = data.get("match_probe")
    contains = probe["contains"] if probe else ()
    mono = data.get("mono")
    return Profile(
        name=data["name"], match=tuple(data["match"]), manufacturer=data["manufacturer"],
        covers=data["covers"], match_descr=tuple(data.get("match_descr", ())),
        match_probe=(probe["oid"], (contains,) if isinstance(contains, str) else tuple(contains)) if probe else None,
        printer_only=data.get("printer_only", False),
        serial=_values(ident.get("serial", [])), model=_values(ident.get("model", [])),
        descr=tuple(ident.get("descr", ())), model_pattern=tuple(ident.get("model_pattern", ())),
        meters=_rules(MeterRule, data.get("meters", [])),
        tables=_rules(TableRule, data.get("tables", []), key=True),
        devices=_rules(DeviceRule, data.get("devices", [])),
        sums=_rules(SumRule, data.get("sums", []), of=True),
        supplies=_rules(SupplyRule, data.get("supplies", [])),
        supply_kinds=_rules(SupplyKindRule, data.get("supply_kinds", []), words=True),
        mono=MonoRule(mono["models"], tuple(mono["meters"])) if mono else None,
        recordings=tuple(data.get("recordings", ())), source=path,
    )


def load_dir(directory: Path) -> tuple[list[Profile], list[schema.Problem]]:
    """Every vendor profile in DIRECTORY, and every problem found in any of them."""
    canonical = standard()["canonical_meters"]
    profiles: list[Profile] = []
    problems: list[schema.Problem] = []
    for path in sorted(directory.glob("*.toml")):
        if path.stem == "standard":
            continue
        try:
            data = _read(path)
        except ConfigError as err:
            problems.append(schema.Problem(path, "(file)", str(err.__cause__ or err)))
            continue
        found = schema.check(path, data, canonical)
        problems += found
        if not found:
            profiles.append(build(path, data))
    return profiles, problems


@lru_cache(maxsize=1)
def standard() -> Standard:
    """The standard tables, read once."""
    return Standard(_read(DATA / "standard.toml"))


@lru_cache(maxsize=1)
def vendor_profiles() -> tuple[Profile, ...]:
    """All vendor profiles, read once; any problem in any file stops the load, all listed."""
    profiles, problems = load_dir(DATA)
    if problems:
        lines = "\n  ".join(str(p) for p in problems)
        raise ConfigError(f"{len(problems)} problem(s) in the profiles under {DATA}; fix them:\n  {lines}")
    return tuple(profiles)


def match(sys_object_id: str | None) -> Profile | None:
    """The vendor profile with the longest matching sysObjectID prefix, if any."""
    if not sys_object_id:
        return None
    oid = sys_object_id.lstrip(".") + "."
    best: tuple[int, Profile] | None = None
    for profile in vendor_profiles():
        for prefix in profile.match:
            if oid.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), profile)
    return best[1] if best else None


def probe_oids() -> list[str]:
    """OIDs that tell a family apart when sysObjectID does not; asked in the first GET."""
    return [p.match_probe[0] for p in vendor_profiles() if p.match_probe]


def select(sys_object_id: str | None, sys_descr: str | None, scalars: Mapping[str, Value]) -> Profile | None:
    """The profile for a printer: by sysObjectID, else by probe OID, else by sysDescr."""
    if profile := match(sys_object_id):
        return profile
    for profile in vendor_profiles():
        if profile.match_probe:
            raw = scalars.get(profile.match_probe[0])
            if isinstance(raw, bytes) and any(c.encode() in raw for c in profile.match_probe[1]):
                return profile
    for profile in vendor_profiles():
        if sys_descr and any(re.search(p, sys_descr) for p in profile.match_descr):
            return profile
    return None
