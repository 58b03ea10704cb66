"""Discovery: every printer on the LAN is found by its serial, with zero configuration.

The network tests build an office LAN in network namespaces (tests/support/netns.py):
the box alone in one namespace, a /24 in the other where about twenty addresses hold
printers (snmpsim with real recordings), one a Linux host's snmpd (not a printer), one
an SNMPv3-only printer (snmpd, authPriv SHA/AES, proxying the Printer-MIB of a
recording), and every other address silent. meterbox runs inside the box namespace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from meterbox.config import (
    ConfigProblems,
    Credential,
    DiscoveryConfig,
    Secret,
    load,
    parse_range,
)
from meterbox.printers.discovery import Discovery, _chains
from meterbox.printers.found import Found, merge
from meterbox.printers.netif import Interface, own_subnets
from meterbox.printers.pacing import TokenBucket
from meterbox.printers.poll import PollResult
from meterbox.printers.reading import Device, Reading
from meterbox.printers.snmp import SnmpClient
from support import INSTALL_SNMPSIM, require
from support.netns import (
    INSTALL_NETNS,
    INSTALL_SNMPD,
    Lan,
    Printers,
    Snmpd,
    non_printer_conf,
    recording,
    sys_object_id,
    v3_printer_conf,
)
from support.snmpsim import Simulator, responder_binary

BOX = '[box]\nid = "MB-7F3A9C"\n'
PRINTERS = Path(__file__).parent / "printers"
V3_USER, V3_AUTH, V3_PRIV = "mbv3", "authpass-123", "privpass-123"

# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("text", "first", "last", "size"), [
    ("192.0.2.0/24", "192.0.2.1", "192.0.2.254", 254),          # network and broadcast left out
    ("192.0.2.77/24", "192.0.2.1", "192.0.2.254", 254),         # host bits forgiven
    ("192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20", 11),
    ("192.0.2.10-20", "192.0.2.10", "192.0.2.20", 11),          # last octet only
    (" 192.0.2.5 ", "192.0.2.5", "192.0.2.5", 1),
    ("192.0.2.4/31", "192.0.2.4", "192.0.2.5", 2),
    ("2001:db8::/120", "2001:db8::", "2001:db8::ff", 256),
])
def test_ranges_parse(text: str, first: str, last: str, size: int) -> None:
    block = parse_range(text)
    assert (str(block.first), str(block.last), block.size) == (first, last, size)
    assert [str(a) for a in block.addresses()][:: size - 1 or 1] == ([first, last] if size > 1 else [first])
    assert str(block) == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("192.0.2.300/24", "expected a range such as"),
    ("192.0.2.20-192.0.2.10", "must be the same kind as, and not before, 192.0.2.20"),
    ("192.0.2.1-2001:db8::1", "must be the same kind as"),
    ("10.0.0.0/8", "too large (16,777,214 addresses); one range may hold at most 65,536 (a /16)"),
    ("printers", "expected a range such as"),
    ("", "expected a range such as"),
])
def test_bad_ranges_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_range(text)
    assert message in str(info.value)


def test_discovery_settings_load_with_defaults_and_units(tmp_path: Path) -> None:
    path = tmp_path / "meterbox.toml"
    path.write_text(BOX + '[discovery]\ninterval = "30m"\nmax_prefix = 24\nranges = ["192.0.2.0/28"]\n'
                    'hosts = ["printer.example.com", "192.0.2.99:1161"]\nrate = 100\nmdns = false\n')
    found = load(path).discovery
    assert found == DiscoveryConfig(enabled=None, interval=1800.0, max_prefix=24,
                                    ranges=(parse_range("192.0.2.0/28"),),
                                    hosts=(("printer.example.com", 161), ("192.0.2.99", 1161)),
                                    rate=100, concurrency=256, mdns=False)


def test_invalid_range_in_config_names_its_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "meterbox.toml"
    path.write_text(BOX + '[discovery]\nranges = ["192.0.2.0/24",\n  "192.0.2.300-400"]\nmax_prefix = "/22"\n'
                    'enabled = "yes"\n')
    with pytest.raises(ConfigProblems) as info:
        load(path)
    assert [str(p) for p in info.value.problems] == [
        'line 4  discovery.ranges = "192.0.2.300-400": expected a range such as "192.0.2.0/24", '
        '"192.0.2.10-192.0.2.50" or "192.0.2.10-50"',
        'line 6  discovery.max_prefix = "/22": expected a whole number 16–30; write it without quotes or slash: 22',
        'line 7  discovery.enabled = "yes": expected true or false',
    ]


def test_check_config_reports_a_bad_range(tmp_path: Path) -> None:
    path = tmp_path / "meterbox.toml"
    path.write_text(BOX + '[discovery]\nranges = ["10.0.0.0/8"]\n')
    done = subprocess.run([sys.executable, "-m", "meterbox", "check-config", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert 'line 4  discovery.ranges = "10.0.0.0/8": too large' in done.stderr


def _iface(name: str, *addresses: str, up: bool = True, loopback: bool = False) -> Interface:
    return Interface(name, up, loopback, tuple(ipaddress.IPv4Interface(a) for a in addresses))


def test_own_subnets_are_capped_and_every_skip_is_explained() -> None:
    blocks, own, notes = own_subnets([
        _iface("lo", "127.0.0.1/8", loopback=True),
        _iface("eth0", "10.1.2.3/16"),
        _iface("eth1", "192.0.2.5/24"),
        _iface("wlan0"),                                   # up, no address
        _iface("eth2", "169.254.7.7/16"),                  # DHCP failed
        _iface("tun0", "198.51.100.1/32"),                 # nothing to sweep
        _iface("eth3", "203.0.113.1/24", up=False),
    ], max_prefix=22)
    assert [(name, str(net)) for name, net in blocks] == [("eth0", "10.1.0.0/22"), ("eth1", "192.0.2.0/24")]
    assert {"10.1.2.3", "192.0.2.5", "127.0.0.1"} <= own
    assert notes == [
        "interface eth0: 10.1.0.0/16 is larger than /22; sweeping only 10.1.0.0/22 around the box "
        "(raise [discovery] max_prefix or add ranges for the rest)",
        "interface wlan0 is up but has no IPv4 address: not swept (if printers are on it, check its cable and DHCP)",
        "interface eth2 has only the self-assigned address 169.254.7.7/16: not swept "
        "(DHCP gave it no address; check the network)",
    ]


def test_token_bucket_holds_the_rate() -> None:
    async def take(n: int) -> float:
        bucket = TokenBucket(200, burst=10)
        started = time.monotonic()
        for _ in range(n):
            await bucket.take()
        return time.monotonic() - started

    elapsed = asyncio.run(take(110))
    assert 0.45 <= elapsed < 0.9          # (110 - 10 burst) / 200 per second = 0.5 s


def _found(host: str, serial: str) -> Found:
    device = Device(serial=serial, manufacturer="HP", model="M130nw", sys_object_id=None, profile="standard")
    result = PollResult(device, Reading(serial=serial, read_at=0.0, meters=[], supplies=[]))
    return Found(host, 161, Credential(), result, "test")


def test_two_addresses_with_one_serial_are_one_printer() -> None:
    merged = merge([_found("192.0.2.20", "A1"), _found("192.0.2.3", "B2"), _found("192.0.2.10", "A1")])
    assert [(f.address, f.serial, f.also_at) for f in merged] == [
        ("192.0.2.3", "B2", []), ("192.0.2.10", "A1", ["192.0.2.20"])]


def test_communities_go_out_together_and_v3_users_in_turn() -> None:
    v2c, v1 = Credential("2c", Secret("a")), Credential("1", Secret("b"))
    u1, u2 = Credential("3", user="u1"), Credential("3", user="u2")
    assert _chains([v2c, u1, v1, u2]) == [[v2c], [u1, u2], [v1]]


def test_rows_never_carry_the_secret() -> None:
    item = _found("192.0.2.3", "B2")
    item.credential = Credential("2c", Secret("s3cr3t-community"))
    row = item.row()
    assert row == {"address": "192.0.2.3", "manufacturer": "HP", "model": "M130nw", "serial": "B2",
                   "credential": "v2c community"}
    assert "s3cr3t" not in json.dumps(row)


# --------------------------------------------------------------------------- printer-only vendors

def _vendor_mib_only(name: str, keep: tuple[str, ...]) -> str:
    """A recording reduced to the system group and the vendor OIDs under KEEP: no Printer-MIB,
    no Host Resources, no page meters (a Kyocera whose Printer-MIB agent is switched off)."""
    lines = (PRINTERS / f"{name}.snmprec").read_text(encoding="latin-1").splitlines(keepends=True)
    return "".join(line for line in lines if line.startswith(("1.3.6.1.2.1.1.", *keep)))


def _sweep(sim: Simulator, community: str) -> tuple[list[Found], list[str]]:
    async def go() -> tuple[list[Found], list[str]]:
        client = SnmpClient()
        try:
            found = await Discovery(client, [Credential("2c", Secret(community))], interfaces=lambda: []).sweep(
                hosts=[(sim.host, sim.port)], own_subnets=False, mdns=False)
            return found.printers, found.others
        finally:
            client.close()
    return asyncio.run(go())


def test_a_printer_only_vendor_is_kept_without_its_printer_mib(tmp_path: Path) -> None:
    """Kyocera makes nothing but printers: its sysObjectID with its own serial and model OIDs
    (1347.43.5.1.1.28 / .1) is a printer even when the Printer-MIB does not answer. The same
    sysObjectID without them (jetdirect_1, a JetDirect EX) and an Epson scanner with its serial
    OID (Epson makes scanners and projectors too) are still no printers."""
    require(responder_binary(), INSTALL_SNMPSIM)
    name = "kyocera_cs-4053ci"
    with Simulator.with_recordings([name, "jetdirect_1", "epson-scanner_ds-860"], tmp_path / "p",
                                   host="127.0.0.2") as sim:
        sim.replace_recording(name, _vendor_mib_only(name, ("1.3.6.1.4.1.1347.43.5.1.1.",)))
        printers, others = _sweep(sim, name)
        assert [(f.serial, f.device.manufacturer, f.device.model) for f in printers] == [
            ("RH28Y00024", "Kyocera", "CS 4053ci")] and others == []
        for not_printer in ("jetdirect_1", "epson-scanner_ds-860"):
            assert _sweep(sim, not_printer) == ([], [sim.address]), not_printer


# --------------------------------------------------------------------------- the office LAN

# host number -> (recording, serial written into it; None: the recording's own serial)
REAL = {10: ("brother_hl-l8260cdw", "U64641E7J134163"), 11: ("canonprinter_lbp", "MKRA012345"),
        12: ("epson", "X3B8022793"), 13: ("epson_cw-c6500au", "X7F4008528"),
        14: ("epson_sc-t3405", "X8G9000415"), 15: ("fujifilmprinter_c7580", "TC101642170085"),
        16: ("jetdirect_m130nw", "VNCRC48198"), 17: ("konica_c250i", "AA2M021115700"),
        18: ("kyocera_cs-4053ci", "RH28Y00024"), 19: ("sharp", "6509415X00"),
        20: ("xerox_apeosport", "TC101180620073")}
# real recordings with Printer-MIB supplies but no serial OID: the test gives them one
SYNTHETIC = {21: ("jetdirect", "MBTEST-HP-1"), 22: ("jetdirect", "MBTEST-HP-2"),
             23: ("jetdirect_context", "MBTEST-HP-3"), 24: ("konica", "MBTEST-KM-1"),
             25: ("konica", "MBTEST-KM-2"), 26: ("okilan_9450g", "MBTEST-OKI"),
             200: ("xerox", "MBTEST-XEROX")}
TWO_PORTS = (16, 27)                 # jetdirect_m130nw answers at .16 and .27: one printer
SCANNER = 28                         # a scanner's agent: SNMP, but no printer
V3_PRINTER, NOT_A_PRINTER = 30, 31
V3_SERIAL = "MBTEST-V3"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    """The LAN described at the top, shared by the module's tests (which only read it)."""
    require(os.geteuid() == 0 and bool(shutil.which("ip")) and bool(shutil.which("iptables")), INSTALL_NETNS)
    require("snmpd", INSTALL_SNMPD)
    require(responder_binary(), INSTALL_SNMPSIM)
    work = tmp_path_factory.mktemp("office")
    with Lan(work) as lan:
        served = {lan.address(n): recording(name, serial if n in SYNTHETIC else None)
                  for n, (name, serial) in {**REAL, **SYNTHETIC}.items()}
        served[lan.address(TWO_PORTS[1])] = recording(REAL[TWO_PORTS[0]][0])
        served[lan.address(SCANNER)] = recording("epson-scanner_ds-860")
        v3_backend = recording("samsungprinter_m4080fx", V3_SERIAL)
        served["127.0.0.1:1161"] = v3_backend          # reached only by the v3 printer's snmpd
        v3_conf = v3_printer_conf(lan.address(V3_PRINTER), V3_USER, V3_AUTH, V3_PRIV, "127.0.0.1:1161",
                                  sys_object_id(v3_backend))
        with Printers(lan, work / "printers", served), \
                Snmpd(lan, work / "v3", v3_conf), \
                Snmpd(lan, work / "host", non_printer_conf(lan.address(NOT_A_PRINTER))):
            yield lan


def expected_serials(lan: Lan) -> dict[str, str]:
    serials = {lan.address(n): serial for n, (_, serial) in {**REAL, **SYNTHETIC}.items()}
    serials[lan.address(V3_PRINTER)] = V3_SERIAL
    return serials


def box_config(tmp_path: Path, lan: Lan, discovery: str = "", auth_key: str = V3_AUTH,
               interval: str = "1s") -> Path:
    """A meterbox.toml for the box namespace: v2c public, then the v3 user."""
    path = tmp_path / "meterbox.toml"
    path.write_text(f'{BOX}state_dir = "{tmp_path / "state"}"\n\n[poll]\ninterval = "{interval}"\n'
                    'timeout = "1s"\n\n'
                    '[[credentials]]\nversion = "2c"\ncommunity = "public"\n\n'
                    f'[[credentials]]\nversion = "3"\nuser = "{V3_USER}"\nauth_protocol = "SHA"\n'
                    f'auth_key = "{auth_key}"\npriv_protocol = "AES"\npriv_key = "{V3_PRIV}"\n\n'
                    f"[discovery]\n{discovery}\n")
    return path


def discover(lan: Lan, *args: str) -> tuple[list[dict[str, Any]], str]:
    done = lan.box_run("discover", "--json", *args, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_zero_configuration_finds_exactly_the_printers(office: Lan, tmp_path: Path) -> None:
    office.add_interface_without_address("mbtnoaddr")
    rows, log = discover(office, "--config", str(box_config(tmp_path, office)), "--no-mdns")
    found = {row["address"]: row for row in rows}
    assert {a: row["serial"] for a, row in found.items()} == expected_serials(office)
    assert [row["address"] for row in rows] == sorted(found, key=lambda a: ipaddress.ip_address(a))
    assert found[office.address(V3_PRINTER)]["credential"] == f"v3 user {V3_USER} (authPriv)"
    assert found[office.address(16)]["credential"] == "v2c community"
    assert found[office.address(16)]["manufacturer"] == "HP"
    for row in rows:
        assert set(row) == {"address", "manufacturer", "model", "serial", "credential"}
    # the second port of the HP, the scanner and the Linux host are not printers of their own
    assert not {office.address(n) for n in (TWO_PORTS[1], SCANNER, NOT_A_PRINTER)} & set(found)
    assert f"printer VNCRC48198 answers at {office.address(16)} and {office.address(27)}" in log
    assert "interface mbtnoaddr is up but has no IPv4 address: not swept" in log
    assert "sweep of 253 addresses took" in log and "2 other SNMP devices ignored" in log
    assert re.search(r"the box's own address [\d.]+ was not probed", log)  # said, not silently dropped


def test_bad_input_is_reported_and_the_sweep_goes_on(office: Lan, tmp_path: Path) -> None:
    config = box_config(tmp_path, office, auth_key="wrong-auth-key",
                        discovery='hosts = ["no-such-printer.invalid"]\nmdns = false\n')
    rows, log = discover(office, "--config", str(config), "--range", "10.77.1.300/24",
                         "--range", f"{office.address(10)}-{office.address(V3_PRINTER)}")
    assert "--range '10.77.1.300/24': expected a range such as" in log
    assert (f"device at {office.address(V3_PRINTER)} answers SNMPv3 but not v3 user {V3_USER} (authPriv): "
            "refused (") in log
    assert "check the user name, auth_key and priv_key and their protocols under [[credentials]]" in log
    assert "wrong-auth-key" not in log
    found = {row["address"]: row["serial"] for row in rows}
    wanted = {a: s for a, s in expected_serials(office).items() if int(a.rsplit(".", 1)[1]) < V3_PRINTER}
    assert found == wanted                # everything else in the range is still found

    rows, log = discover(office, "--config", str(config))   # no --range: own subnet and hosts
    assert "host no-such-printer.invalid: cannot resolve the name" in log
    assert len(rows) == len(expected_serials(office)) - 1


def test_communities_from_the_command_line_are_tried_in_order(office: Lan) -> None:
    rows, log = discover(office, "--range", f"{office.address(10)}-12", "--community", "private",
                         "--community", "public", "--no-mdns")
    assert [r["serial"] for r in rows] == [REAL[n][1] for n in (10, 11, 12)]
    assert "sweeping 3 addresses with v2c community, then v2c community" in log


# --------------------------------------------------------------------------- the daemon


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)
    return value


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:       # not created yet
            return []


def readings(db: Path, serial: str) -> int:
    rows = query(db, "SELECT count(*) FROM messages WHERE kind='reading' AND serial=?", serial)
    return int(rows[0][0]) if rows else 0


def polled_at(db: Path, serial: str) -> list[str]:
    """Hosts where SERIAL was last read without error (`meterbox status` shows these)."""
    rows = query(db, "SELECT address FROM printers WHERE serial=? AND last_error IS NULL", serial)
    return [a.rsplit(":", 1)[0] for (a,) in rows]


def test_a_printer_that_moves_stays_the_same_printer(office: Lan, tmp_path: Path) -> None:
    """DHCP gives the printer a new address: same device, history goes on, no duplicate;
    then another printer takes that address: a new printer."""
    mover, newcomer = "MBTEST-MOVER", "MBTEST-NEWCOMER"
    here, there = office.address(40), office.address(41)
    config = box_config(tmp_path, office, discovery=f'max_prefix = 30\nranges = ["{here}-{there}"]\n'
                        'mdns = false\ninterval = "1h"\n')
    db, log = tmp_path / "state" / "meterbox.db", tmp_path / "daemon.log"

    def serve(address: str, name: str, serial: str) -> Printers:
        return Printers(office, tmp_path / f"p-{serial}", {address: recording(name, serial)}).__enter__()

    printer = serve(here, "jetdirect_m252dw", mover)
    daemon = office.box_spawn(log, "run", "--config", str(config))
    try:
        wait_for("a reading at the first address", lambda: readings(db, mover) >= 2 and polled_at(db, mover) == [here], log=log)
        printer.__exit__()
        printer = serve(there, "jetdirect_m252dw", mover)
        daemon.send_signal(signal.SIGUSR1)                   # on demand: sweep now
        wait_for("the poller to follow", lambda: polled_at(db, mover) == [there], log=log)
        before = readings(db, mover)
        wait_for("readings at the new address", lambda: readings(db, mover) > before + 1, log=log)
        assert query(db, "SELECT count(*) FROM devices WHERE serial=?", mover) == [(1,)]
        assert query(db, "SELECT count(*) FROM messages WHERE kind='device' AND serial=?", mover) == [(1,)]
        assert query(db, "SELECT address FROM printers") == [(f"{there}:161",)]
        assert f"printer {mover} moved from {here}:161 to {there}:161" in log.read_text()

        printer.__exit__()
        printer = serve(there, "samsungprinter_m4080fx", newcomer)
        daemon.send_signal(signal.SIGUSR1)
        wait_for("the sweep to see the new printer", lambda: f"is now {newcomer} (was {mover}): a different "
                 f"printer; {mover} keeps its history" in log.read_text(), log=log)
        wait_for("the new printer's readings", lambda: readings(db, newcomer) >= 2, log=log)
        assert query(db, "SELECT serial FROM devices ORDER BY serial") == [(mover,), (newcomer,)]
        # one poller, not the retired one too: 8 more readings at 1 s intervals take about 7 s (a reading
        # taken just before the count may be committed just after it); two pollers would take about 4 s
        start, began = readings(db, newcomer), time.monotonic()
        wait_for("8 more readings", lambda: readings(db, newcomer) >= start + 8, log=log)
        assert time.monotonic() - began >= 5.5
    finally:
        office.stop(daemon)
        printer.__exit__()


def test_a_printer_announced_over_mdns_is_found_and_polled(office: Lan, tmp_path: Path) -> None:
    """Nothing is swept but the box's /30; the printer at .200 is known only from its mDNS announcement."""
    config = box_config(tmp_path, office, discovery='max_prefix = 30\nmdns = true\n')
    db, log = tmp_path / "state" / "meterbox.db", tmp_path / "daemon.log"
    announcer = office.spawn(office.lan, [sys.executable, str(Path(__file__).parent / "support" / "announce.py"),
                                          "--address", office.address(200), "--interface", office.address(254),
                                          "--name", "Office Xerox"], tmp_path / "announce.log")
    try:
        wait_for("the announcement", lambda: "registered" in (tmp_path / "announce.log").read_text(errors="replace"),
                 log=tmp_path / "announce.log")
        daemon = office.box_spawn(log, "run", "--config", str(config))
        wait_for("readings of the announced printer", lambda: readings(db, "MBTEST-XEROX") >= 2, log=log)
        assert polled_at(db, "MBTEST-XEROX") == [office.address(200)]
        office.stop(daemon)
    finally:
        office.stop(announcer)


def test_silent_printers_do_not_starve_the_ones_that_answer(office: Lan, tmp_path: Path) -> None:
    """40 listed printers are switched off (silent: no answer, no ICMP); the 4 that answer keep
    their interval, because silent ones retry less often and share a quarter of the poll slots."""
    answering = {10: "U64641E7J134163", 16: "VNCRC48198", 17: "AA2M021115700", 18: "RH28Y00024"}
    silent = range(100, 140)
    printers = "".join(f'[[printers]]\nhost = "{office.address(n)}"\n\n' for n in [*answering, *silent])
    config = tmp_path / "meterbox.toml"
    config.write_text(f'{BOX}state_dir = "{tmp_path / "state"}"\nruntime_dir = "{tmp_path / "run"}"\n\n'
                      '[poll]\ninterval = "1s"\ntimeout = "500ms"\nretries = 1\nconcurrency = 4\n\n'
                      f"[discovery]\nenabled = false\n\n{printers}")
    db, log = tmp_path / "state" / "meterbox.db", tmp_path / "daemon.log"
    daemon = office.box_spawn(log, "run", "--config", str(config))
    try:
        wait_for("the first readings", lambda: all(readings(db, s) >= 1 for s in answering.values()), log=log)
        start, began = {s: readings(db, s) for s in answering.values()}, time.monotonic()
        wait_for("6 more readings of each answering printer",
                 lambda: all(readings(db, s) >= start[s] + 6 for s in answering.values()), timeout=30, log=log)
        took = time.monotonic() - began
        # every 1 s, so 6 more take about 6 s; with the 40 silent printers holding the 4 slots for
        # 1 s each (500 ms, 1 retry) they would take 6 rounds of 10 s
        assert took < 20, f"6 readings took {took:.0f} s: silent printers starve the others"
        text = log.read_text()
        assert text.count(f"printer at {office.address(100)}:161") == 1, "said once, not at every retry"
    finally:
        office.stop(daemon)
