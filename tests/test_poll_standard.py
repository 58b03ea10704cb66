"""`meterbox poll --json` against every real recording, checked against its RFC 3805 values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.cli import run_cli
from support.snmpsim import Simulator

PRINTERS = Path(__file__).parent / "printers"
RECORDINGS = sorted(p.name.removesuffix(".rfc3805.json") for p in PRINTERS.glob("*.rfc3805.json"))
UNITS = {None: "impressions", "impressions": "impressions", "sheets": "sheets"}
SPECIAL_STATES = {-1: "unknown", -2: "unknown", -3: "some-remaining"}


def standard(name: str) -> dict[str, Any]:
    return json.loads((PRINTERS / f"{name}.rfc3805.json").read_text())


def poll(printers: Simulator, name: str) -> dict[str, Any]:
    out = run_cli("poll", printers.address, "--community", name, "--json", "--timeout", "3")
    return json.loads(out)


def test_every_recording_has_its_standard_file() -> None:
    assert len(RECORDINGS) >= 50


@pytest.mark.parametrize("name", RECORDINGS)
def test_poll_matches_rfc3805_values(printers: Simulator, name: str) -> None:
    expected = standard(name)
    got = poll(printers, name)
    reading = got["reading"]

    # serial: prtGeneralSerialNumber where the recording has it
    if expected["prtGeneralSerialNumber"]:
        assert got["device"]["serial"] == expected["prtGeneralSerialNumber"][0]["value"].strip()

    # meters: every prtMarkerLifeCount, with its unit, as marker.life[.n]
    meters = {m["name"]: m for m in reading["meters"]}
    for n, marker in enumerate(expected["markers"]):
        name_n = "marker.life" if n == 0 else f"marker.life.{n + 1}"
        assert meters[name_n]["value"] == marker["prtMarkerLifeCount"]
        assert meters[name_n]["unit"] == UNITS[marker["counter_unit_name"]]
    if not expected["markers"]:
        assert "marker.life" not in meters

    # supplies: one per row, in order; percent of max; special values kept as states
    supplies = reading["supplies"]
    assert len(supplies) == len(expected["supplies"])
    for got_s, exp in zip(supplies, expected["supplies"]):
        level = exp["prtMarkerSuppliesLevel"]
        if level in SPECIAL_STATES:
            assert (got_s["level"], got_s["state"]) == (None, SPECIAL_STATES[level]), exp
        elif exp["percent_of_max"] is not None:
            assert got_s["level"] is not None and abs(got_s["level"] - exp["percent_of_max"]) <= 0.5 + 1e-9, exp
            assert got_s["state"] == ("empty" if level == 0 else "low" if got_s["level"] <= 10 else "ok")
        else:  # a count against an unknown capacity is no percent
            assert got_s["level"] is None, exp
        assert got_s["unit"] == "percent"


def test_supply_names_are_canonical(printers: Simulator) -> None:
    """okilan_9450g: toner, drums per colour, transfer belt and fuser, named by kind and colour."""
    names = [s["name"] for s in poll(printers, "okilan_9450g")["reading"]["supplies"]]
    assert names == ["toner.black", "toner.cyan", "toner.magenta", "toner.yellow",
                     "drum.black", "drum.cyan", "drum.magenta", "drum.yellow",
                     "transfer.none", "fuser.none"]


def test_identity_from_host_resources(printers: Simulator) -> None:
    device = poll(printers, "jetdirect_m130nw")["device"]
    assert device == {"manufacturer": "HP", "model": "LaserJet MFP M130nw", "serial": "VNCRC48198"}


def test_readable_table_by_default(printers: Simulator) -> None:
    out = run_cli("poll", printers.address, "--community", "jetdirect_m130nw")
    assert "serial VNCRC48198" in out
    assert "15,232 impressions" in out
    assert "toner.black" in out and "28 %" in out
