"""Loads profile data files and picks the ones that apply to a printer by sysObjectID."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from meterbox.errors import ConfigError
from meterbox.profiles.decoders import DECODERS

DATA = Path(__file__).with_name("data")


@dataclass(frozen=True)
class MeterRule:
    """One vendor OID -> canonical meter(s). With `words`, the decoder yields several values."""

    oid: str
    name: str | None = None
    unit: str = "impressions"
    decode: str = "int"
    words: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """A vendor family's identity OIDs and meters, layered over the standard profile."""

    name: str
    match: tuple[str, ...]
    covers: str = ""
    manufacturer: str | None = None
    serial: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    meters: tuple[MeterRule, ...] = ()
    recordings: tuple[str, ...] = ()
    source: Path | None = None

    def scalar_oids(self) -> list[str]:
        return [*self.serial, *self.model, *(m.oid for m in self.meters)]


@dataclass(frozen=True)
class Standard:
    """The standard profile's tables (Printer-MIB, Host Resources, PWG), read from standard.toml."""

    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def columns(self) -> dict[str, str]:
        return self.data["columns"]

    def int_table(self, key: str) -> dict[int, str]:
        return {int(k): v for k, v in self.data[key].items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"profile {path}: {err}; fix the TOML syntax") from err


def _profile(path: Path, data: dict[str, Any]) -> Profile:
    if data.get("name") != path.stem:
        raise ConfigError(f"profile {path}: name = {data.get('name')!r} must equal the file name {path.stem!r}")
    meters = []
    for i, m in enumerate(data.get("meters", [])):
        rule = MeterRule(**m)
        if rule.decode not in DECODERS:
            raise ConfigError(f"profile {path}: meters[{i}].decode = {rule.decode!r} is not a known decoder "
                              f"({', '.join(sorted(DECODERS))})")
        meters.append(rule)
    ident = data.get("identity", {})
    return Profile(
        name=data["name"], match=tuple(data.get("match", ())), covers=data.get("covers", ""),
        manufacturer=data.get("manufacturer"), serial=tuple(ident.get("serial", ())),
        model=tuple(ident.get("model", ())), meters=tuple(meters),
        recordings=tuple(data.get("recordings", ())), source=path,
    )


@lru_cache(maxsize=1)
def standard() -> Standard:
    """The standard tables, read once."""
    return Standard(_read(DATA / "standard.toml"))


@lru_cache(maxsize=1)
def vendor_profiles() -> tuple[Profile, ...]:
    """All vendor profiles, read once."""
    return tuple(_profile(p, _read(p)) for p in sorted(DATA.glob("*.toml")) if p.stem != "standard")


def match(sys_object_id: str | None) -> Profile | None:
    """The vendor profile with the longest matching sysObjectID prefix, if any."""
    if not sys_object_id:
        return None
    oid = sys_object_id + "."
    best: tuple[int, Profile] | None = None
    for profile in vendor_profiles():
        for prefix in profile.match:
            if oid.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), profile)
    return best[1] if best else None
