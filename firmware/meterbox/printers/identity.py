"""Who a printer is: serial, manufacturer and model, vendor OIDs first, then the standard MIBs.

The serial is the key of the vendor's invoice, so a value that is not the printer's own is
no serial at all: a placeholder ("serial_number", "0000000000", a mask such as "AAA0A00000"),
an address or host name, or the device's own sysName. Every value is made printable
(`private.printable`) before it reaches a log line, the store, a terminal or the wire.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from meterbox.printers.private import Private, printable
from meterbox.printers.profiles import loader
from meterbox.printers.profiles.decoders import DECODERS
from meterbox.printers.profiles.loader import Profile
from meterbox.printers.reading import Device
from meterbox.printers.snapshot import Snapshot, Source, index_key
from meterbox.printers.snmp import Value, text

#: decoders that read a model out of an IEEE-1284 device id: trusted only where hrDeviceDescr agrees
DEVICE_ID_DECODERS = frozenset({"ieee1284_model", "ieee1284_description"})
_OID = re.compile(r"^\.?\d+(\.\d+)+$")


def serial_problem(serial: str, private: Private | None = None) -> str | None:
    """Why SERIAL (printable text) is no identity, or None when it may be one."""
    ident = loader.standard()["identity"]
    if len(serial) > ident["max_serial"]:
        return f"longer than {ident['max_serial']} characters, so not a serial number"
    folded = re.sub(r"[\W_]+", "", serial.lower())
    if not folded or any(re.search(p, folded) for p in ident["placeholders"]):
        return "a placeholder, not a serial number"
    return (private or Private()).reason(serial)


def clean_serial(value: Value | None, private: Private | None = None) -> str | None:
    """A serial as printed on the label: printable, trimmed, not a placeholder nor the office's words."""
    return _serial_or_reason(value, private or Private())[0]


def _serial_or_reason(value: Value | None, private: Private) -> tuple[str | None, str | None]:
    if isinstance(value, bytes):
        value = bytes(b for b in value if 0x20 <= b < 0x7F)  # HP PML adds a binary prefix
    serial = printable(text(value))
    if not serial:
        return None, None
    problem = serial_problem(serial, private)
    return (None, problem) if problem else (serial, None)


def identify(snap: Snapshot, profile: Profile | None, explain: list[Source]) -> Device:
    """Serial, manufacturer and model: vendor OIDs first, then the standard MIBs, then sysDescr.

    The manufacturer is the brand the device names (a Gestetner is sold as a Gestetner though
    the ricoh profile reads it), else the profile's, else sysDescr's, else the IANA enterprise's.
    sysName is read only to keep it, and any address or host name, out of serial and model.
    """
    ident = loader.standard()["identity"]
    private = Private.of(text(snap.scalars.get(ident["sys_name"])))
    serial = _serial(snap, profile, explain, private)
    sys_oid = text(snap.scalars.get(ident["sys_object_id"]))
    sys_oid = sys_oid if sys_oid and _OID.match(sys_oid) else None
    sys_descr = printable(text(snap.scalars.get(ident["sys_descr"])))
    brand, model = _model(snap, profile, sys_descr, private)
    manufacturer = (brand or (profile.manufacturer if profile else None)
                    or (split_brand(sys_descr)[0] if sys_descr else None) or _enterprise(sys_oid))
    return Device(serial=serial or "", manufacturer=printable(manufacturer, ident["max_manufacturer"]),
                  model=model, sys_object_id=sys_oid, profile=profile.name if profile else "standard")


def _serial(snap: Snapshot, profile: Profile | None, explain: list[Source], private: Private) -> str | None:
    """The first serial OID that holds a real serial; what was refused on the way is explained."""
    std = loader.standard()["identity"]
    rules: list[tuple[str, str | None, str]] = \
        [(r.oid, r.decode, profile.name) for r in profile.serial] if profile else []
    rules += [(oid, None, "standard") for oid in std["serial"]]
    for oid, decode, owner in rules:
        raw = snap.scalars.get(oid)
        value = DECODERS[decode](raw) if decode and raw is not None else raw
        serial, problem = _serial_or_reason(value if isinstance(value, (str, bytes)) else None, private)
        if serial:
            explain.append(Source("serial", oid, raw, f"{owner}: serial" + (f" ({decode})" if decode else "")))
            return serial
        if problem:
            explain.append(Source("serial refused", oid, raw, f"{owner}: {problem}"))
    sys_descr = snap.scalars.get(std["sys_descr"])
    serial, problem = _serial_or_reason(_descr(profile, text(sys_descr), "serial"), private)
    if serial or problem:
        owner = profile.name if profile else "standard"
        explain.append(Source("serial" if serial else "serial refused", std["sys_descr"], sys_descr,
                              f"{owner}: sysDescr pattern" + (f": {problem}" if problem else "")))
    return serial


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


def _model(snap: Snapshot, profile: Profile | None, sys_descr: str | None,
           private: Private) -> tuple[str | None, str | None]:
    """(brand, model) from the first text in the order of trust that still names a model once tidied."""
    named = _descr(profile, sys_descr, "brand")
    descr_brand = split_brand(named)[0] if named else None
    for name in _model_texts(snap, profile, sys_descr):
        brand, model = _tidy(name, profile, private)
        if model:
            return brand or descr_brand, model
    return descr_brand, None


def _model_texts(snap: Snapshot, profile: Profile | None, sys_descr: str | None) -> Iterator[str]:
    """The vendor's model OIDs; hrDeviceDescr of the printer (an IEEE-1284 id before it only where
    the two agree: MDL "M129-M134" is a family, hrDeviceDescr "M130nw" the model); the profile's
    sysDescr pattern; last, where no row is a printer, the first hrDevice row (a scanner's "DS-860")."""
    plain: list[str] = []
    device_ids: list[str] = []
    for rule in profile.model if profile else ():
        raw = snap.scalars.get(rule.oid)
        decoded = DECODERS[rule.decode](raw) if raw is not None else None
        if isinstance(decoded, str) and decoded:
            (device_ids if rule.decode in DEVICE_ID_DECODERS else plain).append(decoded)
    yield from plain
    std = loader.standard()
    types, descrs = snap.column("hr_device_type"), snap.column("hr_device_descr")
    rows = [(i, text(d)) for i, d in sorted(descrs.items(), key=index_key)]
    printer = next((d for i, d in rows if d and text(types.get(i)) == std["hr_device_printer"]), None)
    agreeing = [d for d in device_ids if printer is None or _agree(d, printer)]
    yield from agreeing
    yield from [printer] if printer else []
    yield from (d for d in device_ids if d not in agreeing)
    if named := _descr(profile, sys_descr, "model"):
        yield named
    if not any(text(t) == std["hr_device_printer"] for t in types.values()):
        yield from (d for _, d in rows[:1] if d)


def _agree(device_id: str, descr: str) -> bool:
    """One names the other: "HL-L2340DW series" and "Brother HL-L2340DW series" agree."""
    a, b = (re.sub(r"[\W_]+|series$", "", split_brand(s)[1].lower()) for s in (device_id, descr))
    return bool(a and b) and (a in b or b in a)


def _tidy(name: str, profile: Profile | None, private: Private) -> tuple[str | None, str | None]:
    """(brand, model) of one model text: printable, without the office's words, firmware words,
    service tags and " series", cut to the profile's model pattern and the contract's length."""
    ident = loader.standard()["identity"]
    brand, model = split_brand(private.cut(printable(name) or ""))
    for pattern in ident["model_cut"]:
        model = re.sub(pattern, "", model)
    model = _shape(model, profile.model_pattern if profile else ())
    model = re.sub(r"\s+series$", "", " ".join(model.split()).strip(" -_/:;,"), flags=re.I)
    return brand, printable(model, ident["max_model"])


def _shape(model: str, patterns: Iterable[str]) -> str:
    """The (?P<model>) part of the first of the profile's model patterns that matches; none: no model."""
    patterns = list(patterns)
    for pattern in patterns:
        if m := re.search(pattern, model):
            return m.group("model")
    return "" if patterns else model


def _descr(profile: Profile | None, sys_descr: str | None, group: str) -> str | None:
    """GROUP (brand, model or serial) from the first of the profile's sysDescr patterns that has it."""
    for pattern in profile.descr if profile and sys_descr else ():
        if (m := re.search(pattern, sys_descr or "")) and m.groupdict().get(group):
            return m.group(group).strip()
    return None
