"""A throw-away PKI for the TLS tests: a vendor CA, broker and box certificates.

The box authenticates with a client certificate whose CN is its box id, and the
broker's ACL keys on that CN (``use_identity_as_username``). The failure
variants exist so tests can prove that each check is really made: a client of
another CA, a server certificate for the wrong name, expired certificates.
Keys are EC P-256: quick to make, and what a Pi would use.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPair", "Pki", "INGEST_ID"]

#: CN of the test-only ingest identity, allowed to read every box's topics.
INGEST_ID = "ingest"

_VALID = dt.timedelta(days=30)


class CertPair(NamedTuple):
    """PEM paths of a certificate and its private key; unpacks as ``cert, key``."""

    cert: Path
    key: Path


@dataclass
class _Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meterbox tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Pki:
    """PEM files in ``directory``: two CAs, server certificates, and box certificates on demand.

    ``ca_cert`` is the vendor CA that the broker trusts and the box checks the
    broker against. ``other_ca_cert`` is an unrelated CA for "wrong CA" tests.
    """

    directory: Path
    ca_cert: Path = field(init=False)
    other_ca_cert: Path = field(init=False)
    server: CertPair = field(init=False)
    server_wrong_name: CertPair = field(init=False)
    server_expired: CertPair = field(init=False)
    ingest: CertPair = field(init=False)
    _now: dt.datetime = field(init=False, repr=False)
    _cas: dict[str, _Authority] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._now = dt.datetime.now(dt.timezone.utc)
        self._cas = {"ca": self._authority("ca", "meterbox test vendor CA"),
                     "other-ca": self._authority("other-ca", "unrelated CA")}
        self.ca_cert = self._cas["ca"].cert_path
        self.other_ca_cert = self._cas["other-ca"].cert_path
        self.server = self._issue("server", "localhost", server_names=["localhost", "127.0.0.1"])
        self.server_wrong_name = self._issue("server-wrong-name", "wrong.example",
                                             server_names=["wrong.example"])
        self.server_expired = self._issue("server-expired", "localhost",
                                          server_names=["localhost", "127.0.0.1"], expired=True)
        self.ingest = self.client(INGEST_ID)

    def crl(self, revoked: list[CertPair], name: str = "crl") -> Path:
        """A CRL of the vendor CA (PEM) that revokes the certificates in REVOKED; for ``Broker(crl=...)``."""
        ca = self._cas["ca"]
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
                   .last_update(self._now - dt.timedelta(minutes=5)).next_update(self._now + _VALID))
        for pair in revoked:
            serial = x509.load_pem_x509_certificate(pair.cert.read_bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(self._now).build())
        path = self.directory / f"{name}.pem"
        path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path

    def client(self, box_id: str, *, ca: str = "ca", expired: bool = False) -> CertPair:
        """A client certificate with CN ``box_id`` (made once, then reused).

        ``ca="other-ca"`` signs it with the unrelated CA; ``expired=True`` makes one
        whose validity ended yesterday.
        """
        stem = f"client-{box_id}" + ("" if ca == "ca" else f"-{ca}") + ("-expired" if expired else "")
        pair = CertPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        return self._issue(stem, box_id, ca=ca, expired=expired)

    # -- minting --------------------------------------------------------------

    def _authority(self, stem: str, cn: str) -> _Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - dt.timedelta(days=1))
            .not_valid_after(self._now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path = self.directory / f"{stem}.crt"
        _write_cert(cert_path, cert)
        _write_key(self.directory / f"{stem}.key", key)
        return _Authority(stem, key, cert, cert_path)

    def _issue(self, stem: str, cn: str, *, ca: str = "ca", expired: bool = False,
               server_names: list[str] | None = None) -> CertPair:
        authority = self._cas[ca]
        key = ec.generate_private_key(ec.SECP256R1())
        if expired:
            not_before, not_after = self._now - dt.timedelta(days=60), self._now - dt.timedelta(days=1)
        else:
            not_before, not_after = self._now - dt.timedelta(days=1), self._now + _VALID
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(authority.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
                           critical=False)
        )
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
                                            critical=False)
        pair = CertPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        _write_cert(pair.cert, builder.sign(authority.key, hashes.SHA256()))
        _write_key(pair.key, key)
        return pair


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
