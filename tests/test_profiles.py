"""Vendor profiles as data: the schema check, the decoders, profile selection, the coverage table.

Pure tests (no SNMP): table tests for the decoders and the brand split, broken profiles fed
to the schema check, and the recordings read "on paper" by the coverage table generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import coverage_table
from meterbox.errors import ConfigError
from meterbox.printers.poll import split_brand
from meterbox.printers.profiles import loader
from meterbox.printers.profiles.decoders import (brother_legacy_percent, brother_words, hp_pml_text, ieee1284_description,
                                        ieee1284_model, integer)
from support.cli import run_cli

PRINTERS = Path(__file__).parent / "printers"
FAMILIES = {"xerox", "hp", "ricoh", "kyocera", "canon", "konica_minolta", "lexmark", "brother", "sharp", "epson",
            "samsung", "toshiba", "oki", "fujifilm", "dell", "zebra", "tsc"}


# -- the shipped profiles ------------------------------------------------------------------

def test_every_family_has_a_profile_and_all_load_without_problems() -> None:
    profiles, problems = loader.load_dir(loader.DATA)
    assert problems == []
    assert {p.name for p in profiles} >= FAMILIES


def test_profile_recordings_exist_and_select_their_profile() -> None:
    """A profile lists only recordings it really reads: the poller picks that very profile for each."""
    for profile in loader.vendor_profiles():
        assert profile.recordings, f"{profile.name}: no recording tests this profile"
        for name in profile.recordings:
            records = coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec")
            chosen = coverage_table.select_profile(records)
            assert chosen is profile, f"{name} is listed by {profile.name} but selects {chosen and chosen.name}"


def test_every_recording_claimed_by_a_profile_is_listed_by_it() -> None:
    listed = {r for p in loader.vendor_profiles() for r in p.recordings}
    for name in coverage_table.recordings():
        chosen = coverage_table.select_profile(coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec"))
        assert chosen is None or name in listed, f"{name} is read by {chosen.name} but not in its recordings"


# -- the schema check: every problem, with file and key -------------------------------------

GOOD = '''
name = "acme"
manufacturer = "Acme"
covers = "everything"
match = ["1.3.6.1.4.1.99999."]
[[meters]]
oid = "1.3.6.1.4.1.99999.1.0"
name = "impressions.total"
'''

BROKEN = {
    "acme.toml": '''
name = "acme_printers"
manufactuer = "Acme"
covers = "everything"
match = ["1.3.6.1.4.1.99999"]
match_descr = ["(unclosed"]
match_probe = { oid = "1.3.6.1.4.1.99999.9.0", contains = ["MFG:Acme", 7] }
printer_only = "yes"
[identity]
serial = ["1.3.6.1.4.1.99999.2.0", { oid = "1.3.6.1.4.1.99999.3.0", decode = "brother_words" }]
descr = ['^Acme (\\S+)']
model_pattern = ['^Acme (?P<name>\\S+)']
[[meters]]
oid = "1.3.6.1.4.1.99999.1.0"
name = "impresions.total"
[[meters]]
oid = "1.3.6.1.4.1.99999.4.0"
decode = "acme_blob"
name = "vendor.acme.pages"
[[meters]]
oid = "1.3.6.1.4.1.99999.5.0"
decode = "brother_words"
[[meters]]
oid = "not.an.oid"
name = "Vendor.Acme.Pages"
words = { "00" = "impressions.total" }
[[tables]]
column = "1.3.6.1.4.1.99999.6"
[[sums]]
name = "impressions.black"
of = ["prints.black"]
[[supplies]]
oid = "1.3.6.1.4.1.99999.7.0"
decode = "brother_words"
words = { "6F" = "toner.blak" }
[mono]
models = '^MX-M'
meters = ["impressions.colour"]
''',
    "zeta.toml": 'name = "zeta"\nmatch = [',
    "omega.toml": GOOD.replace('name = "acme"', 'name = "omega"'),
}


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    for file, text in BROKEN.items():
        (tmp_path / file).write_text(text)
    return tmp_path


def test_schema_reports_every_problem_with_file_and_key(broken: Path) -> None:
    profiles, problems = loader.load_dir(broken)
    assert [p.name for p in profiles] == ["omega"]  # a good file still loads; broken ones never half-load
    found = {(p.path.name, p.key) for p in problems}
    expected = {
        ("acme.toml", "name"),                      # must equal the file name
        ("acme.toml", "manufactuer"),               # unknown key, did you mean "manufacturer"
        ("acme.toml", "manufacturer"),              # missing
        ("acme.toml", "match[0]"),                  # prefix must end in a dot
        ("acme.toml", "match_descr[0]"),            # bad regular expression
        ("acme.toml", "match_probe.contains"),      # texts only
        ("acme.toml", "printer_only"),              # true or false
        ("acme.toml", "identity.model_pattern[0]"),  # no (?P<model>...)
        ("acme.toml", "mono.meters[0]"),            # not a canonical meter
        ("acme.toml", "identity.serial[1].decode"),  # a blob decoder where a text is needed
        ("acme.toml", "identity.descr[0]"),         # no named group
        ("acme.toml", "meters[0].name"),            # not canonical, did you mean
        ("acme.toml", "meters[1].decode"),          # unknown decoder
        ("acme.toml", "meters[2].words"),           # blob decoder without words
        ("acme.toml", "meters[3].oid"),
        ("acme.toml", "meters[3].name"),            # upper case vendor name
        ("acme.toml", "meters[3].words"),           # words on a scalar decoder
        ("acme.toml", "tables[0]"),                 # maps nothing
        ("acme.toml", "sums[0].of[0]"),             # sums a meter no rule produces
        ("acme.toml", "supplies[0].words.6F"),      # code case and supply name
        ("zeta.toml", "(file)"),                    # TOML syntax
    }
    assert expected <= found, sorted(found - expected)
    messages = {(p.path.name, p.key): p.message for p in problems}
    assert 'did you mean "manufacturer"' in messages[("acme.toml", "manufactuer")]
    assert 'did you mean "impressions.total"' in messages[("acme.toml", "meters[0].name")]
    assert "acme_blob" in messages[("acme.toml", "meters[1].decode")]
    assert str(next(p for p in problems if p.key == "name")).startswith("acme.toml: name: ")


def test_a_broken_shipped_profile_stops_the_load_with_every_problem_listed(
        broken: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "DATA", broken)
    loader.vendor_profiles.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            loader.vendor_profiles()
        text = str(err.value)
        assert "problem(s) in the profiles" in text and "acme.toml: meters[1].decode" in text
        assert "zeta.toml: (file)" in text
    finally:
        monkeypatch.undo()
        loader.vendor_profiles.cache_clear()


# -- decoders (pure functions, table tests) ------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    (bytes.fromhex("000104000003daff"), {"00": 986}),
    (bytes.fromhex("010104000001cd020104000001ebff"), {"01": 461, "02": 491}),
    # HL-5350DN: a 4-byte drum count among 1-byte status records (the library misreads it)
    (bytes.fromhex("110104000061a83101010141010103630101035401010166010101350101013601010162010101ff"),
     {"11": 25000}),
    (b"\xff", {}),
    (bytes.fromhex("0001040000"), {}),        # truncated: stop, do not guess
    (12, None),
])
def test_brother_words(raw: bytes | int, expected: dict[str, int] | None) -> None:
    assert brother_words(raw) == expected


def test_brother_legacy_percent() -> None:
    """MFC-5490CN: level / max x 100 (bieniu/brother snapshot: 20, 60, 30, 55)."""
    raw = bytes.fromhex("a101020414a201020c14a301020614a401020b14ff")
    assert brother_legacy_percent(raw) == {"a1": 20, "a2": 60, "a3": 30, "a4": 55}
    assert brother_legacy_percent(bytes.fromhex("6f010400001d4cff")) == {}


@pytest.mark.parametrize(("raw", "model", "description"), [
    (b"MFG:Brother;CMD:PJL,HBP;MDL:HL-L2340DW series;CLS:PRINTER;", "HL-L2340DW series", "HL-L2340DW series"),
    (b"MFG:HP;CMD:PJL,PML,URP;MDL:HP LaserJet MFP M129-M134;CLS:PRINTER;DES:HP LaserJet MFP M130nw;MEM:MEM=233MB;",
     "HP LaserJet MFP M129-M134", "HP LaserJet MFP M130nw"),
    (b"MANUFACTURE:OKI UK LTD;COMMAND SET:PCL,XPS;MODEL:MC873;CLASS:PRINTER;DESCRIPTION:MC873;", "MC873", "MC873"),
    (b"MFG:Xerox; CMD:PCL, PJL; MDL:AltaLink C8045; CLS:Printer; DES:Xerox AltaLink C8045",
     "AltaLink C8045", "Xerox AltaLink C8045"),
    (b"MFG:Xerox;CMD:PCL;MDL:Phaser 4510N;CLS:Printer;DES:Xerox Phaser 4510 Laser Printer, PostScript 3",
     "Phaser 4510N", "Xerox Phaser 4510 Laser Printer"),
    (b"", None, None),
])
def test_ieee1284(raw: bytes, model: str | None, description: str | None) -> None:
    assert ieee1284_model(raw) == model
    assert ieee1284_description(raw) == description


@pytest.mark.parametrize(("raw", "expected"), [
    (bytes.fromhex("0115564E4352433438313938"), "VNCRC48198"),  # 2-byte symbol set prefix
    (b"VNCRC48198", "VNCRC48198"),
    (b"\x01\x15", None),
])
def test_hp_pml_text(raw: bytes, expected: str | None) -> None:
    assert hp_pml_text(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [(15232, 15232), (0, 0), (-2, None), (b" 42 ", 42), (b"n/a", None)])
def test_integer(raw: int | bytes, expected: int | None) -> None:
    assert integer(raw) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("HP LaserJet MFP M130nw", ("HP", "LaserJet MFP M130nw")),
    ("Hewlett-Packard Color LaserJet M452nw", ("HP", "Color LaserJet M452nw")),
    ("KONICA MINOLTA bizhub C250i", ("Konica Minolta", "bizhub C250i")),
    ("FUJI XEROX ApeosPort-VI C4471", ("Fuji Xerox", "ApeosPort-VI C4471")),
    ("Develop ineo+ 280", ("Develop", "ineo+ 280")),
    ("ZebraNet Wired PS", (None, "ZebraNet Wired PS")),   # a brand must be a whole word
    ("MP C2503", (None, "MP C2503")),
])
def test_split_brand(text: str, expected: tuple[str | None, str]) -> None:
    assert split_brand(text) == expected


# -- profile selection -----------------------------------------------------------------------

@pytest.mark.parametrize(("sys_object_id", "sys_descr", "scalars", "expected"), [
    ("1.3.6.1.4.1.2435.2.3.9.1", None, {}, "brother"),
    (".1.3.6.1.4.1.1129.1.2.1", None, {}, "toshiba"),           # a leading dot, as toshiba-tec_ev4 has
    ("1.3.6.1.4.1.641.2.71107164", "TOSHIBA e-STUDIO305CS", {}, "lexmark"),   # sysObjectID wins
    (None, None, {"1.3.6.1.4.1.2435.2.3.9.1.1.7.0": b"MFG:Brother;MDL:HL-2270DW series;"}, "brother"),
    (None, "SHARP MX-2614N", {}, "sharp"),
    ("1.3.6.1.4.1.683.6.0", "ZebraNet Wired PS", {}, None),
    ("1.3.6.1.4.1.110.1", None, {}, None),                      # enterprise 110 is not HP's 11
])
def test_select(sys_object_id: str | None, sys_descr: str | None, scalars: dict[str, bytes],
                expected: str | None) -> None:
    chosen = loader.select(sys_object_id, sys_descr, scalars)
    assert (chosen.name if chosen else None) == expected


# -- synthetic recordings --------------------------------------------------------------------

SYNTHETIC = sorted(p.stem for p in PRINTERS.glob("*_synthetic.snmprec"))


def test_synthetic_recordings_are_attributed() -> None:
    attribution = (PRINTERS / "ATTRIBUTION").read_text()
    assert len(SYNTHETIC) >= 8
    for name in SYNTHETIC:
        assert name in attribution, f"{name}.snmprec is not named in tests/printers/ATTRIBUTION"


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_recordings_are_in_oid_order(name: str) -> None:
    """snmpsim answers GETNEXT/GETBULK in file order: an unsorted line would hide the rest of its walk."""
    oids = [line.split("|", 1)[0] for line in (PRINTERS / f"{name}.snmprec").read_text().splitlines()]
    keys = [tuple(int(p) for p in oid.split(".")) for oid in oids]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


# -- the generated coverage table ------------------------------------------------------------

def test_profiles_md_is_up_to_date() -> None:
    """firmware/PROFILES.md is generated: regenerate with `.venv/bin/python -m tests.coverage_table --write`."""
    assert coverage_table.OUTPUT.read_text(encoding="utf-8") == coverage_table.render(), (
        "firmware/PROFILES.md is out of date: run .venv/bin/python -m tests.coverage_table --write")


CONTRACT = Path(__file__).parent.parent / "cloud" / "contract" / "reading.v1.schema.json"


def test_every_reading_keeps_the_wire_contract() -> None:
    """Meter and supply names from every profile, on every recording, are ones the receiver accepts."""
    import jsonschema

    schema = json.loads(CONTRACT.read_text())
    for name in coverage_table.recordings():
        records = coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec")
        profile = coverage_table.select_profile(records)
        snap = coverage_table.Snapshot.from_records(records, coverage_table.walk_roots(profile, True))
        _, reading, _ = coverage_table.interpret(snap, profile, 1_800_000_000.0)
        reading.serial = reading.serial or "NO-SERIAL"
        jsonschema.validate(reading.payload("MB-00AA11"), schema)


# Recordings that name no model anywhere in the walk (sysDescr, hrDeviceDescr, vendor OIDs),
# and what they do say. Every other recording must get a model: the coverage table shows it.
NO_MODEL = {
    "canonprinter_mf": 'hand-written LibreNMS stub, sysDescr "Canon MF": the i-SENSYS MF series, no model',
    "dell-laser_color": 'hand-written LibreNMS stub, sysDescr "Dell Color Laser": a product class',
    "jetdirect_1": 'sysDescr names the HP JetDirect EX print server, nothing of the Kyocera behind it',
    "jetdirect_2": "hand-written LibreNMS stub: a sysObjectID alone",
    "samsungprinter_c": 'hand-written LibreNMS stub, sysDescr "Samsung C": a series letter',
    "samsungprinter_s": 'hand-written LibreNMS stub, sysDescr "Samsung S": a series letter',
    "samsungprinter_scx": 'hand-written LibreNMS stub, sysDescr "Samsung SCX": the SCX series, no model',
    "zebra_1": 'sysDescr "Zebra Wired" names the ZebraNet print server, no printer model',
}


def test_every_recording_that_names_its_model_gets_one() -> None:
    """The coverage table's model column: a model wherever the walk names one, and only there."""
    for name in coverage_table.recordings():
        model = coverage_table.coverage(name).model
        assert (model == "–") == (name in NO_MODEL), (name, model, NO_MODEL.get(name))


def test_coverage_table_shows_vendor_meters_where_the_profiles_read_them() -> None:
    kyocera = coverage_table.coverage("kyocera_cs-4053ci")
    assert (kyocera.profile, kyocera.serial, kyocera.total, kyocera.black, kyocera.color) == (
        "kyocera", "✓", "✓ vendor", "✓ vendor", "✓ vendor")
    assert coverage_table.coverage("brother_hl-l2340dw").supplies == "2 (2 vendor)"
    assert coverage_table.coverage("utax").total == "✓ standard"
    assert coverage_table.coverage("dell-laser").model == "Dell B3460dn"


# -- meterbox profiles -----------------------------------------------------------------------

def test_cli_lists_profiles() -> None:
    out = run_cli("profiles")
    for family in FAMILIES:
        assert f"\n{family} " in f"\n{out}"
    assert "1.3.6.1.4.1.2435." in out and "brother_hl-l2340dw" in out and "MFG:Brother" in out
    rows = json.loads(run_cli("profiles", "--json"))
    sharp = next(r for r in rows if r["name"] == "sharp")
    assert sharp["match"] == ["1.3.6.1.4.1.2385."] and "sharp" in sharp["recordings"] and sharp["covers"]
