"""The vendor CA: one EC P-256 root that signs the broker's and web service's server certificates,
the box client certificates (through the vendor service) and the CRL the broker checks.

Layout of a CA directory: ``ca.crt``, ``ca.key`` (0600), ``<name>.crt`` / ``<name>.key`` per
server or service identity, and ``crl.pem`` once the vendor service has written one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .pem import write_certificate, write_private_key

ORGANIZATION = "meterbox vendor"
CA_LIFE = dt.timedelta(days=3650)
SERVER_LIFE = dt.timedelta(days=397)  # what browsers accept for a server certificate
CLIENT_LIFE = dt.timedelta(days=397)


class CaError(Exception):
    """A CA directory is missing, incomplete or would be overwritten; str() says which and what to do."""


@dataclass(frozen=True)
class Authority:
    """The CA's certificate and key, loaded from a CA directory."""

    directory: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def init(directory: Path, common_name: str = "meterbox vendor CA") -> Authority:
    """Create the CA in ``directory``; refuses to overwrite an existing one (every box trusts it)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.key").exists():
        raise CaError(f"{directory / 'ca.key'} already exists; a new CA would orphan every box and "
                      f"server certificate it signed: use another --dir or remove it deliberately")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + CA_LIFE)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private_key(directory / "ca.key", key)
    write_certificate(directory / "ca.crt", cert)
    return Authority(directory, cert, key)


def load(directory: Path) -> Authority:
    """Load ``ca.crt`` and ``ca.key`` from a CA directory made by :func:`init`."""
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as err:
        raise CaError(f"no vendor CA in {directory} ({err.filename} is missing); "
                      f"create one with: meterbox-factory ca init --dir {directory}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{directory / 'ca.key'} is not an EC key; it was not made by meterbox-factory")
    return Authority(directory, cert, key)


def general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an address (``127.0.0.1``), a DNS SAN otherwise."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _leaf(authority: Authority, cn: str, public_key: ec.EllipticCurvePublicKey, life: dt.timedelta,
          usage: x509.ObjectIdentifier) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn)).issuer_name(authority.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + life)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
                       critical=False)
    )


def issue_server(authority: Authority, names: list[str], stem: str | None = None) -> tuple[Path, Path]:
    """A server certificate (broker, web service) for ``names`` as SANs; CN is the first name.

    Written as ``<stem>.crt`` / ``<stem>.key`` in the CA directory; ``stem`` defaults to the first name.
    """
    if not names:
        raise CaError("a server certificate needs at least one host name or IP address")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_leaf(authority, names[0], key.public_key(), SERVER_LIFE, ExtendedKeyUsageOID.SERVER_AUTH)
            .add_extension(x509.SubjectAlternativeName([general_name(n) for n in names]), critical=False)
            .sign(authority.key, hashes.SHA256()))
    return _write_pair(authority.directory, stem or names[0], cert, key)


def issue_client(authority: Authority, common_name: str, stem: str | None = None) -> tuple[Path, Path]:
    """A client certificate for a vendor service identity (e.g. ``ingest``) with CN ``common_name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_leaf(authority, common_name, key.public_key(), CLIENT_LIFE, ExtendedKeyUsageOID.CLIENT_AUTH)
            .sign(authority.key, hashes.SHA256()))
    return _write_pair(authority.directory, stem or common_name, cert, key)


def _write_pair(directory: Path, stem: str, cert: x509.Certificate,
                key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    if stem in {"ca", "crl"} or "/" in stem:
        raise CaError(f"{stem!r} cannot name a certificate file in the CA directory; pick another name")
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    write_private_key(key_path, key)
    write_certificate(cert_path, cert)
    return cert_path, key_path
