"""Poll one printer: a few full PDUs in, one Device and one Reading out.

Round trips: in steady state one GET carries every scalar (identity, vendor meters, supply
blobs) and the changing cells of the table rows found by the last walk (SnmpClient.read,
columns.py); every 12th poll walks the changing columns again, by GETBULK side by side.
The first poll of a printer asks one GET more before those (who is it: sysObjectID, and
the probe OIDs of families without one), walks every column, and learns the table sizes,
the PWG counters and the hrDevice roles, so later polls ask for exactly enough.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from meterbox.errors import NotAPrinter, PrinterMisbehaves
from meterbox.printers.profiles import loader
from meterbox.printers.profiles.loader import Profile
from meterbox.printers.identity import clean_serial, identify, split_brand
from meterbox.printers.meters import hr_roles, meters
from meterbox.printers.private import printable
from meterbox.printers.reading import Device, Reading
from meterbox.printers.snapshot import Snapshot, Source
from meterbox.printers.snmp import SnmpClient, Target, Value, text
from meterbox.printers.supplies import supplies, supply_level

__all__ = ["Hint", "PollResult", "Snapshot", "Source", "clean_serial", "hr_roles", "identify", "interpret",
           "meters", "read_printer", "select_profile", "split_brand", "supplies", "supply_level", "walk_roots"]

log = logging.getLogger(__name__)

POLL_TIME = 8   # a whole poll may take this many times one request's timeout with all its retries


@dataclass
class Hint:
    """What an earlier poll learned about a printer, so the next one needs fewer round trips."""

    sys_object_id: str | None = None
    rows: int = 12
    has_pwg: bool | None = None
    known: bool = False                      # identity read: the profile below is the printer's
    profile: Profile | None = None
    hr_roles: dict[str, str] = field(default_factory=dict)   # hrDeviceIndex -> printer/copier/...


@dataclass
class PollResult:
    device: Device
    reading: Reading
    explain: list[Source] = field(default_factory=list)
    requests: int = 0


def identity_oids() -> list[str]:
    ident = loader.standard()["identity"]
    return [ident["sys_object_id"], ident["sys_descr"], ident["sys_name"], *ident["serial"], *ident["model"]]


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
    limit = POLL_TIME * target.timeout * (target.retries + 1)
    try:
        async with asyncio.timeout(limit) as deadline:
            scalars, walked = await _read(client, target, hint)
            sys_oid = text(scalars.get(loader.standard()["identity"]["sys_object_id"]))
            if hint.sys_object_id != sys_oid:  # another printer answers at this address now: start over
                log.info("printer at %s now reports sysObjectID %s; reading its identity again",
                         target.address, printable(sys_oid))
                hint.__dict__.update(Hint().__dict__)
                scalars, walked = await _read(client, target, hint)
    except TimeoutError:
        if not deadline.expired():
            raise                      # PrinterUnreachable is a TimeoutError too
        raise PrinterMisbehaves(f"printer at {target.address}: it answers, but one poll took more than "
                                f"{limit:g}s; restart the printer or update its firmware") from None
    snap = Snapshot(scalars, walked)
    hint.rows = max([len(v) for v in walked.values()] + [1]) + 1
    device, reading, explain = interpret(snap, hint.profile, clock())
    if strict:
        _check_is_printer(snap, target, reading, hint.profile)
    return PollResult(device, reading, explain, client.requests - before)


async def _read(client: SnmpClient, target: Target, hint: Hint) -> tuple[dict[str, Value], dict[str, dict[str, Value]]]:
    """Scalars and columns: in steady state one GET (SnmpClient.read); a first poll asks who it is first."""
    first: dict[str, Value] = {}
    if not hint.known:
        first = await client.get(target, identity_oids() + loader.probe_oids())
        hint.profile, hint.known = select_profile(first), True
        hint.sys_object_id = text(first.get(loader.standard()["identity"]["sys_object_id"]))
    profile = hint.profile
    wanted = (profile.scalar_oids(hint.hr_roles) if profile else []) + ([] if first else identity_oids())
    roots, static = walk_roots(profile, hint.has_pwg), static_roots(profile)
    scalars, walked = await client.read(target, wanted, roots, static, hint.rows)
    scalars.update(first)
    if hint.has_pwg is None:
        hint.has_pwg = bool(walked.get(loader.standard()["pwg"]["probe"]))
        if hint.has_pwg:
            walked.update(await _walk_pwg(client, target))
            # the next polls read these columns too: from the rows found now, by one GET
            roots = walk_roots(profile, True)
            client.remember(target, roots, static, {r: walked.get(r, {}) for r in roots})
    if profile:
        scalars.update(await _missing_cells(client, target, profile, hint, walked, wanted))
    return scalars, walked


def static_roots(profile: Profile | None) -> set[str]:
    """Columns whose cells do not change while their row exists: kept from the last full walk."""
    std = loader.standard()
    static = {std.columns[c] for c in STATIC_COLUMNS} | {std["pwg"]["key_service_type"]}
    return static | {key for table in profile.tables for key in table.key} if profile else static


#: a supply's colorant, class, type, description and unit, an hrDevice's type and description
STATIC_COLUMNS = ("hr_device_type", "hr_device_descr", "marker_unit", "supply_colorant", "supply_class",
                  "supply_type", "supply_descr", "supply_unit", "colorant_value")


async def _walk_pwg(client: SnmpClient, target: Target) -> dict[str, dict[str, Value]]:
    pwg = loader.standard()["pwg"]
    return await client.walk_once(target, [pwg["key_service_type"], *pwg["meters"]], max_repetitions=12)


async def _missing_cells(client: SnmpClient, target: Target, profile: Profile, hint: Hint,
                         walked: dict[str, dict[str, Value]], asked: list[str]) -> dict[str, Value]:
    """hrDevice cells (Xerox) at indexes this poll's hrDeviceTable revealed: one more GET, once."""
    hint.hr_roles = hr_roles(Snapshot({}, walked))
    done = set(asked)
    missing = [o for o in profile.scalar_oids(hint.hr_roles) if o not in done]
    return await client.get(target, missing) if missing and profile.devices else {}


def _check_is_printer(snap: Snapshot, target: Target, reading: Reading, profile: Profile | None = None) -> None:
    """Only printers are read: Printer-MIB present, an hrDevicePrinter row, vendor page meters, or
    the serial or model OID of a vendor that makes nothing but printers (`printer_only`)."""
    std = loader.standard()
    if snap.column("marker_life") or snap.column("supply_level") or snap.column("supply_type") or reading.meters:
        return
    if any(text(v) == std["hr_device_printer"] for v in snap.column("hr_device_type").values()):
        return
    if any(snap.scalars.get(o) for o in std["identity"]["serial"]):
        return
    if profile and profile.printer_only and any(snap.scalars.get(r.oid) for r in (*profile.serial, *profile.model)):
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
