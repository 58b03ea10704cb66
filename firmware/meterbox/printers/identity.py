"""Who a printer is: serial, manufacturer and model, vendor OIDs first, then the standard MIBs."""

from __future__ import annotations

import re
from typing import Iterable

from meterbox.printers.profiles import loader
from meterbox.printers.profiles.decoders import DECODERS
from meterbox.printers.profiles.loader import Profile
from meterbox.printers.reading import Device
from meterbox.printers.snapshot import Snapshot, Source, index_key
from meterbox.printers.snmp import Value, text


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
    yield from (descrs.get(i) for i, t in sorted(types.items(), key=index_key) if text(t) == std["hr_device_printer"])
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
