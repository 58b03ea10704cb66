"""Bad input to `meterbox poll`: one clear line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

import pytest

from support.cli import run_cli, run_cli_fail
from support.process import free_udp_port
from support.snmpsim import Simulator


@pytest.fixture
def garbage_agent() -> Iterator[str]:
    """A UDP 'agent' on loopback that answers every request with bytes that are not SNMP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                _, peer = sock.recvfrom(65535)
            except socket.timeout:
                continue
            sock.sendto(b"\x30\x03\x02\x01\xff garbage", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def one_line(err_text: str) -> str:
    lines = [line for line in err_text.splitlines() if line.strip()]
    assert len(lines) == 1, err_text
    assert "Traceback" not in err_text
    return lines[0]


def test_unreachable_printer() -> None:
    err = run_cli_fail("poll", f"127.0.0.1:{free_udp_port()}", "--timeout", "0.3")
    assert err.code == 2
    assert "no answer within 0.3s" in one_line(err.stderr)


def test_wrong_community(printers: Simulator) -> None:
    err = run_cli_fail("poll", printers.address, "--community", "not-a-printer", "--timeout", "0.3")
    line = one_line(err.stderr)
    assert "community is right" in line and printers.address in line


def test_malformed_answers_say_so(garbage_agent: str) -> None:
    """Not "no answer ... check that it is switched on": that sends a technician the wrong way."""
    err = run_cli_fail("poll", garbage_agent, "--timeout", "0.3")
    line = one_line(err.stderr)
    assert "answered with a malformed SNMP message" in line and "no answer" not in line


def test_v3_needs_a_user() -> None:
    err = run_cli_fail("poll", "127.0.0.1", "--snmp-version", "3")
    assert "SNMPv3 needs --user" in one_line(err.stderr)


def test_corrupt_value_in_a_recording_does_not_stop_the_poll(printers: Simulator) -> None:
    """okilan_9450g has a corrupt Counter32 upstream; the Printer-MIB tables still read."""
    out = run_cli("poll", printers.address, "--community", "okilan_9450g")
    assert "toner.black" in out


def test_an_admin_set_printer_name_never_becomes_the_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """prtGeneralPrinterName is set by the office (often its host name): it must not leave as the model."""
    with Simulator.with_recordings(["kyocera_cs-4053ci"], tmp_path / "p") as sim:
        sim.set_values("kyocera_cs-4053ci", {"1.3.6.1.2.1.43.5.1.1.16.1": "PRN-ACCT-2F-SALES"})
        out = run_cli("poll", sim.address, "--community", "kyocera_cs-4053ci", "--json")
    assert "PRN-ACCT" not in out
    assert '"model": "CS 4053ci"' in out


def test_a_bad_address_is_one_line() -> None:
    err = run_cli_fail("poll", "printer:abc")
    assert "'printer:abc' is not a printer address" in one_line(err.stderr)


def test_a_printer_named_by_host_name_is_read_and_an_unknown_name_is_one_line(printers: Simulator) -> None:
    """Offices type host names: the name is resolved (once) and the printer read; a name that does not
    resolve says so, not "no answer"."""
    out = run_cli("poll", f"localhost:{printers.port}", "--community", "jetdirect_m130nw", "--json")
    assert '"serial": "VNCRC48198"' in out
    err = run_cli_fail("poll", "no-such-printer.invalid", "--timeout", "0.3")
    line = one_line(err.stderr)
    assert "cannot resolve the address" in line and "check the host name" in line


@contextlib.contextmanager
def relay(printers: Simulator, family: int = socket.AF_INET, *, answer_from_another_port: bool = False) -> Iterator[str]:
    """A front address that relays each request to the simulated printer and its answer back: from
    the front's own port (a printer at that address), or from another port of the same host (a
    datagram from an address the request did not go to: not its answer)."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    front = socket.socket(family, socket.SOCK_DGRAM)
    front.bind((host, 0))
    front.settimeout(0.2)
    other = socket.socket(family, socket.SOCK_DGRAM)
    other.bind((host, 0))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.settimeout(2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = front.recvfrom(65535)
                back.sendto(data, (printers.host, printers.port))
                answer, _ = back.recvfrom(65535)
            except socket.timeout:
                continue
            (other if answer_from_another_port else front).sendto(answer, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"[{host}]:{front.getsockname()[1]}" if family == socket.AF_INET6 else f"{host}:{front.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for s in (front, other, back):
            s.close()


def test_an_answer_from_another_port_is_not_the_printers_answer(printers: Simulator) -> None:
    with relay(printers) as address:                                  # the relay itself works ...
        assert '"serial": "VNCRC48198"' in run_cli("poll", address, "--community", "jetdirect_m130nw", "--json")
    with relay(printers, answer_from_another_port=True) as address:   # ... an answer from elsewhere does not count
        err = run_cli_fail("poll", address, "--community", "jetdirect_m130nw", "--timeout", "0.5")
    assert "no answer within 0.5s" in one_line(err.stderr)


@pytest.mark.parametrize("written", ["[::1]", "[0:0:0:0:0:0:0:1]"])
def test_an_ipv6_printer_is_read_however_its_address_is_written(printers: Simulator, written: str) -> None:
    with relay(printers, socket.AF_INET6) as address:
        port = address.rsplit(":", 1)[1]
        out = run_cli("poll", f"{written}:{port}", "--community", "jetdirect_m130nw", "--json")
    assert '"serial": "VNCRC48198"' in out
