"""Every recording, polled on paper and stored as the daemon stores it for sending.

What would leave the box fits the wire contract (the JSON Schemas in cloud/contract/, which
the vendor's ingest applies) and keeps DESIGN.md's promise: none of the printer's sysName,
sysContact or sysLocation, no IPv4 or MAC address, whatever the walk says and even where an
office typed its host name and address into the fields a model is read from.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import coverage_table
from meterbox.outbox.store import Store
from meterbox.printers.poll import Snapshot, interpret, select_profile, walk_roots
from meterbox.printers.profiles import loader
from meterbox.printers.snmp import Value, text

PRINTERS = Path(__file__).parent / "printers"
CONTRACT = Path(__file__).parent.parent / "cloud" / "contract"
SCHEMAS = {leaf: json.loads((CONTRACT / f"{kind}.v1.schema.json").read_text())
           for leaf, kind in (("readings", "reading"), ("devices", "device"))}
BOX = "MB-00AA11"
SYS_NAME, SYS_CONTACT, SYS_LOCATION = "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.4.0", "1.3.6.1.2.1.1.6.0"
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
MAC = re.compile(r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}")
# What an office may have typed: its host name, address and names, in the fields models come from.
OFFICE = {SYS_NAME: b"prn-acct-2f.corp.example", SYS_CONTACT: b"it-desk@corp.example",
          SYS_LOCATION: b"Accounts, 2nd floor"}
TYPED_IN = b" prn-acct-2f.corp.example 10.20.30.40"


def _typed_in(records: dict[str, Value]) -> dict[str, Value]:
    """RECORDS with the office's names set, and its host name and address appended to sysDescr,
    every hrDeviceDescr and the profile's plain model OIDs (an admin-editable device name)."""
    profile = select_profile(records)
    fields = ["1.3.6.1.2.1.1.1.0", *(o for o in records if o.startswith("1.3.6.1.2.1.25.3.2.1.3.")),
              *(r.oid for r in (profile.model if profile else ()) if r.decode == "text")]
    changed = {**records, **OFFICE}
    for oid in fields:
        value = records.get(oid)
        if isinstance(value, (bytes, str)):
            changed[oid] = (value.encode() if isinstance(value, str) else value) + TYPED_IN
    return changed


def _stored(records: dict[str, Value], tmp_path: Path) -> list[dict[str, Any]]:
    """The messages the store holds for sending after one poll of RECORDS (one device, one reading).

    A printer without serial is never reported (box/daemon.py); it gets a stand-in serial here so
    that the rest of its payloads is checked all the same.
    """
    profile = select_profile(records)
    device, reading, _ = interpret(Snapshot.from_records(records, walk_roots(profile, True)), profile,
                                   1_800_000_000.0)
    if not device.serial:
        device, reading.serial = dataclasses.replace(device, serial="NO-SERIAL"), "NO-SERIAL"
    store = Store(tmp_path / "meterbox.db")
    try:
        store.add_readings(BOX, [(device, reading)])
        return [{"leaf": m.topic.rsplit("/", 1)[1], "text": m.wire()} for m in store.messages()]
    finally:
        store.close()


def _private(records: dict[str, Value]) -> set[str]:
    """The walk's own sysName, sysContact and sysLocation (where it has them), lower case."""
    values = (text(records.get(oid)) for oid in (SYS_NAME, SYS_CONTACT, SYS_LOCATION))
    return {v.lower() for v in values if v and len(v) >= 3}


@pytest.mark.parametrize("typed_in", [False, True], ids=["as-recorded", "office-names-typed-in"])
@pytest.mark.parametrize("name", coverage_table.recordings())
def test_every_payload_fits_the_contract_and_keeps_the_privacy_promise(
        name: str, typed_in: bool, tmp_path: Path) -> None:
    records = coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec")
    if typed_in:
        records = _typed_in(records)
    messages = _stored(records, tmp_path)
    assert sorted(m["leaf"] for m in messages) == ["devices", "readings"]
    private = _private(records) | ({"prn-acct-2f", "corp.example", "10.20.30.40"} if typed_in else set())
    for message in messages:
        jsonschema.validate(json.loads(message["text"]), SCHEMAS[message["leaf"]])
        wire = message["text"].lower()
        assert not IPV4.search(wire) and not MAC.search(wire), (name, message)
        assert not {p for p in private if p in wire}, (name, message)


def test_the_walks_hold_what_must_not_leave() -> None:
    """The test above greps for something: real sysNames, locations and addresses are in the walks."""
    walks = {n: coverage_table.read_snmprec(PRINTERS / f"{n}.snmprec") for n in coverage_table.recordings()}
    assert _private(walks["zebra"]) >= {"6nm1pas_ab07", "booth 7"}
    with_addresses = [n for n, r in walks.items() if any(IPV4.search(text(v) or "") for v in r.values())]
    assert len(with_addresses) >= 5, with_addresses
    assert loader.standard()["identity"]["sys_name"] == SYS_NAME
