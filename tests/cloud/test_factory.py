"""Factory: the vendor CA, minting box identities, and labels whose QR code a scanner reads back."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meterbox_factory import claimcode, label
from meterbox_factory.mint import BOX_ID, Identity, MintError, mint
from support import require

FACTORY = [sys.executable, "-m", "meterbox_factory"]


def factory(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FACTORY, *map(str, args)], capture_output=True, text=True, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_mint_writes_identities_and_an_import_file_without_secrets(tmp_path: Path) -> None:
    result = factory("mint", "--out", tmp_path, "--count", "5", "--vendor", "https://vendor.example/")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "vendor-import.json").read_text())
    assert len(records) == 5 and len({r["box"] for r in records}) == 5
    for record in records:
        assert set(record) == {"box", "public_key", "claim_hash"} and BOX_ID.match(record["box"])
        folder = tmp_path / record["box"]
        identity = Identity.load(folder)
        assert identity.vendor == "https://vendor.example"
        assert len(identity.claim_code.replace("-", "")) * 5 >= 50
        assert mode(folder / "box.key") == 0o600 and mode(folder) == 0o700
        key = serialization.load_pem_private_key((folder / "box.key").read_bytes(), password=None)
        assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode() \
            == record["public_key"]
        assert record["claim_hash"].startswith("pbkdf2_sha256$")
        assert claimcode.check_code(identity.claim_code, record["claim_hash"])
        assert identity.claim_code not in json.dumps(records)
    assert "PRIVATE KEY" not in (tmp_path / "vendor-import.json").read_text()
    # a second batch into the same folder keeps the first and never reuses an id
    mint(tmp_path, 3, "https://vendor.example")
    records = json.loads((tmp_path / "vendor-import.json").read_text())
    assert len(records) == 8 and len({r["box"] for r in records}) == 8


def test_the_claim_hash_is_django_pbkdf2(tmp_path: Path) -> None:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    encoded = claimcode.hash_code("7KQ2-MX9D-3FHT")
    assert PBKDF2PasswordHasher().verify("7KQ2-MX9D-3FHT", encoded)
    assert not PBKDF2PasswordHasher().verify("7KQ2-MX9D-3FHV", encoded)


@pytest.mark.parametrize(("typed", "canonical"), [
    ("7KQ2-MX9D-3FHT", "7KQ2-MX9D-3FHT"),
    ("7kq2mx9d3fht", "7KQ2-MX9D-3FHT"),
    (" 7KQ2 MX9D 3FHT ", "7KQ2-MX9D-3FHT"),
    ("7KQ2-MX9D-3FHO", "7KQ2-MX9D-3FH0"),   # O read as zero
    ("1L1I-0000-0000", "1111-0000-0000"),   # I and L read as one
    ("7KQ2-MX9D-3FH", ""),                  # too short
    ("7KQ2-MX9D-3FHU", ""),                 # U is not in the alphabet
])
def test_typed_codes_are_forgiven_their_usual_slips(typed: str, canonical: str) -> None:
    assert claimcode.normalize(typed) == canonical


def test_ca_and_server_certificates(tmp_path: Path) -> None:
    assert factory("ca", "init", "--dir", tmp_path / "ca").returncode == 0
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    again = factory("ca", "init", "--dir", tmp_path / "ca")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert factory("ca", "server-cert", "--dir", tmp_path / "ca", "broker.example", "127.0.0.1").returncode == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / "broker.example.crt").read_bytes())
    root = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(root)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert mode(tmp_path / "ca" / "broker.example.key") == 0o600
    missing = factory("ca", "server-cert", "--dir", tmp_path / "nowhere", "x.example")
    assert missing.returncode == 2 and "ca init --dir" in missing.stderr


def test_label_png_qr_decodes_to_the_claim_url(tmp_path: Path) -> None:
    require("zbarimg", "apt-get install zbar-tools")
    (identity,) = mint(tmp_path / "boxes", 1, "https://vendor.example")
    for suffix in ("svg", "png", "pdf"):
        result = factory("label", identity.folder, "--out", tmp_path / f"label.{suffix}")
        assert result.returncode == 0, result.stderr
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(tmp_path / "label.png")],
                             capture_output=True, text=True, timeout=30)
    url = f"https://vendor.example/claim?box={identity.box}&code={identity.claim_code}"
    assert decoded.stdout.strip() == url == label.claim_url(identity)
    svg = (tmp_path / "label.svg").read_text()
    assert identity.box in svg and identity.claim_code in svg and 'width="62.0mm"' in svg
    assert (tmp_path / "label.pdf").read_bytes().startswith(b"%PDF")


def test_label_sheet_is_a4_with_every_box(tmp_path: Path) -> None:
    require("gs", "apt-get install ghostscript")
    mint(tmp_path / "boxes", 30, "https://vendor.example")
    assert factory("label-sheet", tmp_path / "boxes", "--out", tmp_path / "sheet.pdf").returncode == 0
    info = subprocess.run(["gs", "-q", "-dNODISPLAY", "-dNOSAFER", "-c",
                           f"({tmp_path / 'sheet.pdf'}) (r) file runpdfbegin pdfpagecount = quit"],
                          capture_output=True, text=True, timeout=60)
    assert info.stdout.strip() == "2"  # 27 labels per A4 page
    text = subprocess.run(["gs", "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=txtwrite", "-sOutputFile=-",
                           str(tmp_path / "sheet.pdf")], capture_output=True, text=True, timeout=60).stdout
    for folder in (tmp_path / "boxes").glob("MB-*"):
        assert folder.name in text


def test_label_of_a_folder_that_is_not_a_box_says_so(tmp_path: Path) -> None:
    result = factory("label", tmp_path, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "identity.json does not exist" in result.stderr
    with pytest.raises(MintError, match="not a URL"):
        mint(tmp_path, 1, "vendor.example")
