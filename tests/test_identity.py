"""Identity: the serial is the key of the vendor's invoice, the model names the printer.

Pure tests (no SNMP): a poll "on paper" of records built here or taken from the recordings,
through the very code the poller uses (profile selection, `interpret`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import coverage_table
from meterbox.printers.identity import clean_serial, serial_problem
from meterbox.printers.poll import Snapshot, identity_oids, interpret, select_profile, walk_roots
from meterbox.printers.private import Private, printable
from meterbox.printers.profiles import loader
from meterbox.printers.reading import Device
from meterbox.printers.snmp import Value

PRINTERS = Path(__file__).parent / "printers"
CONTRACT = Path(__file__).parent.parent / "cloud" / "contract"
SYS_DESCR, SYS_OID, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0"
PRT_SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"
HR_TYPE, HR_DESCR, HR_PRINTER = "1.3.6.1.2.1.25.3.2.1.2.1", "1.3.6.1.2.1.25.3.2.1.3.1", "1.3.6.1.2.1.25.3.1.5"


def device(records: dict[str, Value]) -> Device:
    """The device a poll would report for RECORDS."""
    profile = select_profile(records)
    snap = Snapshot.from_records(records, walk_roots(profile, True))
    return interpret(snap, profile, 0.0)[0]


def recorded(name: str, **changes: Value) -> dict[str, Value]:
    """A recording's records, with CHANGES ({OID with "_" for ".": value}) applied."""
    records = coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec")
    records.update({k.replace("_", "."): v for k, v in changes.items()})
    return records


# -- placeholders are never identities ---------------------------------------------------------

@pytest.mark.parametrize("placeholder", [
    "serial_number", "SerialNumber", "Serial Number", "SERIAL-NUMBER", "serial no.", "S/N", "SN",
    "AAAAAAA000AAAA000", "AAA0A00000", "XXX00000", "0000000000", "000-000", "XXXXXXXX", "xxxxxxxxxx",
    "TEST000000", "test", "Test-0001", "1234567890", "123456789", "0123456789", "987654321",
    "unknown", "Unknown", "N/A", "n.a.", "none", "(none)", "NULL", "Not Available", "default",
    "-", "?", "??????", "...", "9999999999",
])
def test_placeholder_serials_are_refused(placeholder: str) -> None:
    assert clean_serial(placeholder) is None
    assert clean_serial(placeholder.encode()) is None
    assert serial_problem(placeholder) == "a placeholder, not a serial number"


@pytest.mark.parametrize("serial", [
    "VNCRC48198", "U64641E7J134163", "E71833C4J372261", "X3B8022793", "RH28Y00024", "6509415X00",
    "TC101642170085", "VNB3J99999", "AA2M021115700", "37J162600538", "7062184", "MKRA012345",
    "A0000001B", "SN8X12345", "TESTA12345",
])
def test_real_serials_pass(serial: str) -> None:
    assert clean_serial(serial) == serial


def test_no_recording_sends_a_placeholder() -> None:
    """`serial_number` (ten bieniu/brother fixtures), the masks and TEST000000 of the JetDirect walks."""
    refused = {}
    for name in coverage_table.recordings():
        records = coverage_table.read_snmprec(PRINTERS / f"{name}.snmprec")
        profile = select_profile(records)
        snap = Snapshot.from_records(records, walk_roots(profile, True))
        found, _, explain = interpret(snap, profile, 0.0)
        refused.update({name: s.raw for s in explain if s.name == "serial refused"})
        assert not found.serial or serial_problem(found.serial) is None, name
    assert refused == {
        **{n: b"serial_number" for n in ("brother_dcp-1618w", "brother_dcp-7070dw", "brother_dcp-j132w",
                                         "brother_dcp-l2540dn", "brother_dcp-l3550cdw", "brother_hl-2270dw", "brother_hl-5350dn",
                                         "brother_hl-l2340dw", "brother_mfc-5490cn", "brother_mfc-j680dw")},
        "jetdirect": b"HP ETHERNET MULTI-ENVIRONMENT,SN:AAA0A00000,FN:1G11F33,SVCID:26267,PID:Purchasing Color Laser",
        "jetdirect_context": b"HP ETHERNET MULTI-ENVIRONMENT,SN:AAA0A00000,FN:1G11F33,SVCID:26267,"
                             b"PID:Purchasing Color Laser",
        "jetdirect_supplies_context": b"HP ETHERNET MULTI-ENVIRONMENT,SN:TEST000000,PID:HP Color LaserJet Test",
    }


def test_a_placeholder_gives_way_to_the_next_serial_oid() -> None:
    """Brother's own OID says "serial_number"; the Printer-MIB serial behind it is the printer's."""
    records = recorded("brother_hl-l2340dw")
    assert device(records).serial == ""
    assert device({**records, PRT_SERIAL: b"E71833C4J372261"}).serial == "E71833C4J372261"


# -- the office's words never leave ----------------------------------------------------------------

@pytest.mark.parametrize(("serial", "sys_name"), [
    ("192.168.10.20", None), ("10.1.2.3", "x"), ("PRN 10.1.2.3", None), ("fe80::21b:a9ff:fe0b:a752", None),
    ("2001:db8::10", None), ("00:1B:A9:0B:A7:52", None), ("prn-acct-01.corp.example.com", None),
    ("printer.local", None), ("PRN-ACCT-01", "prn-acct-01"), ("PRN-ACCT-01", "prn-acct-01.corp.example"),
    ("XY-PRN-ACCT-01", "PRN-ACCT-01"), ("admin@example.com", None), ("http://printer/", None),
])
def test_an_address_host_name_or_sysname_is_no_serial(serial: str, sys_name: str | None) -> None:
    assert clean_serial(serial, Private.of(sys_name)) is None
    records: dict[str, Value] = {SYS_DESCR: b"Printer", PRT_SERIAL: serial.encode(), HR_TYPE: HR_PRINTER}
    if sys_name:
        records[SYS_NAME] = sys_name.encode()
    assert device(records).serial == ""


def test_sysname_is_read_with_the_identity_and_cut_from_the_model() -> None:
    assert SYS_NAME in identity_oids()
    records = recorded("kyocera_cs-4053ci", **{"1_3_6_1_4_1_1347_43_5_1_1_1_1": b"CS 4053ci ACCT-PRN-2F",
                                               SYS_NAME.replace(".", "_"): b"acct-prn-2f.office.example"})
    found = device(records)
    assert (found.serial, found.model) == ("RH28Y00024", "CS 4053ci")


@pytest.mark.parametrize(("model", "expected"), [
    ("Color LaserJet M452nw 192.168.1.20", "Color LaserJet M452nw"),
    ("Color LaserJet M452nw (prn-2f.example.com)", "Color LaserJet M452nw"),
    ("LaserJet MFP M130nw [00:1b:a9:0b:a7:52]", "LaserJet MFP M130nw"),
    ("printer.example.com", None),
    ("MX-3570N fe80::1", "MX-3570N"),
])
def test_addresses_and_host_names_are_cut_from_a_model(model: str, expected: str | None) -> None:
    records: dict[str, Value] = {SYS_DESCR: b"Printer", HR_TYPE: HR_PRINTER, HR_DESCR: model.encode()}
    assert device(records).model == expected


def test_control_characters_never_leave() -> None:
    """ESC sequences, BEL, DEL, C1 and bidi overrides go before a value reaches a log, a terminal or the wire."""
    records = recorded("kyocera_cs-4053ci", **{
        "1_3_6_1_4_1_1347_43_5_1_1_28_1": b"RH28\x1b[31mY000\x0724\x7f",
        "1_3_6_1_4_1_1347_43_5_1_1_1_1": "CS\x9b2J 4053ci\u202e\x1b]0;owned\x07".encode()})
    found = device(records)
    assert (found.serial, found.model, found.manufacturer) == ("RH28Y00024", "CS 4053ci", "Kyocera")
    assert printable("a\tb\r\n\x00c\x85d\u2028e") == "a b c d e"


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ("Color LaserJet Pro MFP M477fdw", 20, "Color LaserJet Pro"),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10, "ABCDEFGHIJ"),
    ("  spaced \t out  ", None, "spaced out"),
    ("\x1b[0m", None, None),
])
def test_printable(value: str, limit: int | None, expected: str | None) -> None:
    assert printable(value, limit) == expected


def test_lengths_are_the_contracts() -> None:
    """A serial over 64 characters is no serial; manufacturer and model are cut to 64 and 128."""
    schema = json.loads((CONTRACT / "device.v1.schema.json").read_text())["properties"]
    ident = loader.standard()["identity"]
    assert (ident["max_serial"], ident["max_manufacturer"], ident["max_model"]) == (
        schema["serial"]["maxLength"], schema["manufacturer"]["maxLength"], schema["model"]["maxLength"])
    assert clean_serial("A1" * 32) == "A1" * 32 and clean_serial("A1" * 33) is None
    long_model = ("LaserJet " * 20).encode()
    found = device({SYS_DESCR: b"Printer", HR_TYPE: HR_PRINTER, HR_DESCR: long_model})
    assert found.model is not None and len(found.model) <= 128 and found.model.endswith("LaserJet")


# -- manufacturer and model, in the order of trust ----------------------------------------------

@pytest.mark.parametrize(("sys_descr", "manufacturer", "model"), [
    (b"LANIER MP C3003 1.02 / LANIER Network Printer C model", "Lanier", "MP C3003"),
    (b"lanier MP 2554 1.01 / lanier Network Printer C model", "Lanier", "MP 2554"),
    (b"SAVIN C9025 1.10 / SAVIN Network Printer C model", "Savin", "C9025"),
    (b"Gestetner MP 5055 1.10 / Gestetner Network Printer C model", "Gestetner", "MP 5055"),
    (b"NRG SP 4210N 1.05 / NRG Network Printer C model", "NRG", "SP 4210N"),
    (b"NASHUATEC MP 2352 1.03 / NASHUATEC Network Printer C model", "Nashuatec", "MP 2352"),
    (b"Rex-Rotary MP 2014 1.00 / Rex-Rotary Network Printer C model", "Rex-Rotary", "MP 2014"),
    (b"REX-ROTARY MP C2051 1.00 / REX-ROTARY Network Printer C model", "Rex-Rotary", "MP C2051"),
    (b"infotec IM 2702 1.01 / infotec Network Printer C model", "Infotec", "IM 2702"),
    (b"INFOTEC MP 301 1.01 / INFOTEC Network Printer C model", "Infotec", "MP 301"),
])
def test_ricoh_oem_brands_in_any_case(sys_descr: bytes, manufacturer: str, model: str) -> None:
    for sys_oid in ("1.3.6.1.4.1.367.1.1", None):   # by sysObjectID, or by the brand in sysDescr alone
        records: dict[str, Value] = {SYS_DESCR: sys_descr, **({SYS_OID: sys_oid} if sys_oid else {})}
        found = device(records)
        assert (found.profile, found.manufacturer, found.model) == ("ricoh", manufacturer, model)


def test_the_vendor_model_oid_comes_first() -> None:
    """Kyocera's 1347.43.5.1.1.1.1 before hrDeviceDescr, hrDeviceDescr before sysDescr."""
    records = recorded("kyocera_cs-4053ci", **{"1_3_6_1_4_1_1347_43_5_1_1_1_1": b"TASKalfa 4053ci"})
    assert device(records).model == "TASKalfa 4053ci"
    del records["1.3.6.1.4.1.1347.43.5.1.1.1.1"]
    assert device(records).model == "CS 4053ci"                       # hrDeviceDescr
    records = {SYS_OID: "1.3.6.1.4.1.297.1.11.93.2", SYS_DESCR: b"FUJIFILM Apeos C7580",
               HR_TYPE: HR_PRINTER, HR_DESCR: b"FUJIFILM Apeos C7580 PS"}
    assert device(records).model == "Apeos C7580 PS"
    del records[HR_DESCR]
    assert device(records).model == "Apeos C7580"                     # sysDescr


def test_hrdevicedescr_wins_where_the_ieee1284_id_disagrees() -> None:
    """jetdirect_m130nw: MDL "LaserJet MFP M129-M134" is the family, hrDeviceDescr the model on the label."""
    records = recorded("jetdirect_m130nw")
    records["1.3.6.1.4.1.11.2.3.9.1.1.7.0"] = b"MFG:HP;MDL:HP LaserJet MFP M129-M134;CLS:PRINTER;"
    assert device(records).model == "LaserJet MFP M130nw"
    # where they agree the device id is the crisper text: "AltaLink C8135", not "... v1 Multifunction System"
    assert device(recorded("xerox_altalink_synthetic")).model == "AltaLink C8135"
    # without hrDeviceDescr, the device id is all there is
    del records[HR_DESCR]
    assert device(records).model == "LaserJet MFP M129-M134"


def test_another_hrdevice_row_names_the_model_only_where_no_row_is_the_printer() -> None:
    """The scanner epson-scanner_ds-860 has one row, "DS-860" (type other): its model. Beside a
    printer row, another row ("Ethernet port") never is."""
    assert device(recorded("epson-scanner_ds-860")).model == "DS-860"
    records: dict[str, Value] = {SYS_DESCR: b"Printer", "1.3.6.1.2.1.25.3.2.1.2.1": "1.3.6.1.2.1.25.3.1.4",
                                 "1.3.6.1.2.1.25.3.2.1.3.1": b"Ethernet port", "1.3.6.1.2.1.25.3.2.1.2.2": HR_PRINTER,
                                 "1.3.6.1.2.1.25.3.2.1.3.2": b""}
    assert device(records).model is None


@pytest.mark.parametrize(("descr", "model", "serial"), [
    (b"Dell B3460dn Laser Printer version NH5.CY.N543 kernel 3.0.0 All-N-1", "B3460dn", ""),
    (b"Dell 5130cdn Color Laser; Net 15.16, Controller 201009021658, Engine 04.67.00", "5130cdn", ""),
    (b"Dell Color Laser 3110cn; Net 8.43, Controller 200707111148, Engine 05.09.00", "3110cn", ""),
    (b"Dell 1135n Laser MFP; 2.70.00.89      04-28-2011;Engine 1.02.45;NIC V4.01.00;S/N 2CWSTQ1", "1135n",
     "2CWSTQ1"),
    (b"Dell MFP H815dw; Controller 201610240647, Engine 00.20.00", "H815dw", ""),
    (b"Dell Color Laser", None, ""),
])
def test_dell_is_trimmed_to_the_model(descr: bytes, model: str | None, serial: str) -> None:
    """Dell names its product among product words, firmware and the service tag (sysDescr examples
    quoted by Greenbone's gb_dell_printer_snmp_detect.nasl); hrDeviceDescr reads the same."""
    by_descr = device({SYS_OID: "1.3.6.1.4.1.674.10898.10.52.1", SYS_DESCR: descr})
    assert (by_descr.profile, by_descr.manufacturer, by_descr.model, by_descr.serial) == ("dell", "Dell", model, serial)
    by_hr = device({SYS_OID: "1.3.6.1.4.1.674.10898.10.52.1", SYS_DESCR: b"Dell Printer",
                    HR_TYPE: HR_PRINTER, HR_DESCR: descr})
    assert by_hr.model == model


def test_label_printers_get_manufacturer_and_model() -> None:
    zebra, tsc = device(recorded("zebra")), device(recorded("tsc"))
    assert (zebra.profile, zebra.manufacturer, zebra.model, zebra.serial) == (
        "zebra", "Zebra", "TLP 2824 Plus", "37J162600538")
    assert (tsc.profile, tsc.manufacturer, tsc.model) == ("tsc", "TSC", "TTP244CE")
    # without ZEBRA-QL-MIB, the ZebraNet print server's view of the printer
    older = {k: v for k, v in recorded("zebra").items() if not k.startswith("1.3.6.1.4.1.10642.200.")}
    assert (device(older).model, device(older).serial) == ("TLP 2824 Plus", "7062184")


def test_fujifilm_and_fuji_xerox_have_a_profile() -> None:
    for name, manufacturer, model in [("fujifilmprinter_c7580", "FUJIFILM", "Apeos C7580"),
                                      ("xerox_apeosport", "Fuji Xerox", "ApeosPort-VI C4471"),
                                      ("xerox_docuprint", "Fuji Xerox", "DocuPrint CM305 df")]:
        found = device(recorded(name))
        assert (found.profile, found.manufacturer, found.model) == ("fujifilm", manufacturer, model)
    # a sysDescr that starts with the product family selects the profile too
    found = device({SYS_DESCR: b"DocuCentre-V C2263; ESS 1.0", HR_TYPE: HR_PRINTER})
    assert (found.profile, found.manufacturer, found.model) == ("fujifilm", "FUJIFILM", "DocuCentre-V C2263")
