"""The setup page, printed to printers the test plays (raw 9100 with PJL, IPP), read back as a person would:
ghostscript renders the job, zbarimg reads the QR code, ghostscript's text output shows the words."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from meterbox.box.setup_page.info import lan_address
from meterbox.printers.reading import Device, Reading
from meterbox.outbox.store import Store
from support import require
from support.cli import run_cli, run_cli_fail
from support.printer import IppPrinter, RawPrinter
from support.process import free_tcp_port

BOX = "MB-7F3A9C"
CLAIM = f"https://vendor.example/claim?box={BOX}&code=K7Q2-M9XD"


@pytest.fixture(autouse=True)
def tools() -> None:
    require("gs", "apt-get install ghostscript")
    require("zbarimg", "apt-get install zbar-tools")


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    """A box's files: its factory identity, a config, and where its store would be."""
    identity = tmp_path / "identity"
    identity.mkdir()
    (identity / "identity.json").write_text(json.dumps({"box": BOX, "claim_code": "K7Q2-M9XD",
                                                        "vendor": "https://vendor.example"}))
    state = tmp_path / "state"
    config = tmp_path / "meterbox.toml"
    config.write_text(f'[box]\nid = "{BOX}"\nstate_dir = "{state}"\n[discovery]\nenabled = false\n')
    return {"identity": identity, "config": config, "state": state, "dir": tmp_path}


def claimed(box: dict[str, Path]) -> None:
    """A client certificate in place: the box is claimed, its QR code is its own page."""
    cert = box["dir"] / "client.crt"
    cert.write_text("cert")
    with box["config"].open("a") as f:
        f.write(f'[uplink]\nhost = "broker.example"\ncert_file = "{cert}"\nkey_file = "{cert}"\n'
                f'ca_file = "{cert}"\n')


def found(box: dict[str, Path], address: str, serial: str = "VNB3K12345", enrolled: bool = True) -> None:
    box["state"].mkdir(exist_ok=True)
    store = Store(box["state"] / "meterbox.db")
    store.add_readings(BOX, [(Device(serial, "HP", "LaserJet M130nw"), Reading(serial, 1.7e9))])
    store.printer_polled(address, serial, None if enrolled else "not enrolled")
    store.close()


def cli(box: dict[str, Path], *args: str) -> str:
    return run_cli("print-setup-page", "--config", str(box["config"]), "--identity", str(box["identity"]), *args)


def document(job: bytes) -> bytes:
    """The page inside a job: PJL's wrapper taken off."""
    if b"ENTER LANGUAGE=" in job:
        job = job.split(b"ENTER LANGUAGE=", 1)[1].split(b"\r\n", 1)[1]
        job = job.rsplit(b"\x1b%-12345X@PJL EOJ", 1)[0]
    return job


def read_page(data: bytes, where: Path) -> tuple[str, str, str]:
    """(format, QR code text, page text) as ghostscript and zbarimg see the page."""
    fmt = "pdf" if data.startswith(b"%PDF") else "ps" if data.startswith(b"%!PS") else "?"
    page = where / f"page.{fmt}"
    page.write_bytes(data)
    png = where / "page.png"
    gs = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE"]
    subprocess.run(gs + ["-sDEVICE=pnggray", "-r150", f"-sOutputFile={png}", str(page)], check=True, timeout=60)
    qr = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, timeout=60)
    text = subprocess.run(gs + ["-sDEVICE=txtwrite", "-sOutputFile=-", str(page)], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    return fmt, qr.stdout.strip(), " ".join(text.split())


def test_raw_9100_pdf_when_pjl_lists_pdf(box: dict[str, Path], tmp_path: Path) -> None:
    with RawPrinter(port=free_tcp_port(), languages=["PCL", "POSTSCRIPT", "PDF"]) as printer:
        said = cli(box, "--printer", f"127.0.0.1:{printer.port}")
        job = printer.wait_job()
    assert "(PDF) sent to 127.0.0.1" in said
    assert job.startswith(b"\x1b%-12345X@PJL JOB") and b"ENTER LANGUAGE=PDF" in job
    fmt, qr, text = read_page(document(job), tmp_path)
    assert (fmt, qr) == ("pdf", CLAIM)
    assert f"Box {BOX}" in text and "Waiting to be claimed" in text


def test_raw_9100_postscript_when_the_printer_says_nothing(box: dict[str, Path], tmp_path: Path) -> None:
    """No PJL answer: plain PostScript, no PJL around it. Claimed: the QR code is the box's own page."""
    claimed(box)
    found(box, "192.0.2.20:161")
    run_cli("pause", "--config", str(box["config"]))
    with RawPrinter(port=free_tcp_port(), languages=None) as printer:
        cli(box, "--printer", f"127.0.0.1:{printer.port}")
        job = printer.wait_job()
    assert job.startswith(b"%!PS-Adobe-3.0")
    fmt, qr, text = read_page(job, tmp_path)
    assert (fmt, qr) == ("ps", f"http://{lan_address()}/")
    assert f"Box {BOX}" in text and "Paused: no contact with the vendor" in text
    assert "HP LaserJet M130nw VNB3K12345 192.0.2.20:161 enrolled" in text


@pytest.mark.parametrize(("formats", "want"), [(["application/pdf", "image/urf"], "pdf"),
                                               (["application/postscript", "image/pwg-raster"], "ps")])
def test_ipp_asks_formats_then_prints(box: dict[str, Path], tmp_path: Path, formats: list[str], want: str) -> None:
    with IppPrinter(formats) as printer:
        said = cli(box, "--printer", printer.url)
        job = printer.wait_job()
    assert f"({want.upper()}) sent to 127.0.0.1:{printer.port} by IPP job 7" in said
    (first, asked), (second, printed) = printer.operations
    assert first == 0x000B and asked["requested-attributes"] == [b"document-format-supported"]
    assert second == 0x0002 and printed["document-format"] == [{"pdf": b"application/pdf",
                                                               "ps": b"application/postscript"}[want]]
    fmt, qr, text = read_page(job, tmp_path)
    assert (fmt, qr) == (want, CLAIM) and BOX in text


def test_without_printer_it_uses_one_the_box_found(box: dict[str, Path], tmp_path: Path) -> None:
    """The store's printers table; SNMP's port is not the print port: 631 (refused here), then 9100."""
    found(box, "127.0.0.7:161")
    with RawPrinter(host="127.0.0.7", port=9100, languages=["POSTSCRIPT"]) as printer:
        said = cli(box)
        job = printer.wait_job()
    assert "(PS) sent to 127.0.0.7:9100 by raw port" in said
    assert b"ENTER LANGUAGE=POSTSCRIPT" in job
    assert read_page(document(job), tmp_path)[1] == CLAIM


@pytest.mark.parametrize("name", ["setup.pdf", "setup.ps"])
def test_out_writes_the_page_with_no_printer_and_no_daemon(box: dict[str, Path], tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    assert "written to" in cli(box, "--out", str(out))
    assert not box["state"].exists(), "--out must not create the daemon's store"
    fmt, qr, text = read_page(out.read_bytes(), tmp_path)
    assert fmt == name.split(".")[1] and qr == CLAIM
    assert "Printers found: 0" in text and "firmware" in text.lower()


def test_no_printer_reachable_exits_2_saying_what_to_do(box: dict[str, Path]) -> None:
    err = run_cli_fail("print-setup-page", "--config", str(box["config"]), "--identity", str(box["identity"]),
                       "--printer", f"127.0.0.1:{free_tcp_port()}")
    assert err.code == 2
    assert "no printer took the setup page" in err.stderr and "refused" in err.stderr
    assert "--out setup.pdf" in err.stderr and len(err.stderr.strip().splitlines()) == 1
    err = run_cli_fail("print-setup-page", "--config", str(box["config"]), "--identity", str(box["identity"]))
    assert err.code == 2 and "found no printer" in err.stderr
