"""Box client certificates from CSRs, and the CRL the broker checks, signed with the vendor CA.

The CA directory is the one ``meterbox-factory ca init`` made; the CRL is written beside it as
``crl.pem``, where the broker configuration points (``crlfile``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from meterbox_factory.ca import ORGANIZATION, Authority, load

CRL_LIFE = dt.timedelta(days=365)  # an expired CRL makes Mosquitto refuse every box: keep it long


class CsrError(ValueError):
    """The box's CSR is unusable; str() says why, for the box's log."""


@dataclass(frozen=True)
class Issued:
    """A freshly signed box certificate."""

    pem: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime


def authority() -> Authority:
    """The vendor CA named by settings (``--ca-dir``)."""
    directory = settings.METERBOX["CA_DIR"]
    if not directory:
        raise RuntimeError("no vendor CA configured; start the service with --ca-dir CA_DIR")
    return load(Path(directory))


def spki_der(key: object) -> bytes:
    """A public key's canonical bytes, to compare keys whatever their PEM line breaks."""
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_box_csr(ca: Authority, csr_pem: str, box_id: str, registered_key_pem: str, days: int) -> Issued:
    """Sign a client certificate (CN = box id, clientAuth) for the key in the CSR.

    The CSR must be signed by, and carry, the very key the factory registered for this box:
    a certificate is never issued for any other key.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CsrError("the csr field is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrError("the CSR's own signature does not verify; make it again from the box key")
    if spki_der(csr.public_key()) != spki_der(serialization.load_pem_public_key(registered_key_pem.encode())):
        raise CsrError(f"the CSR carries a key other than the one registered for {box_id}; "
                       f"make the CSR from the box's own key (box.key)")
    now = dt.datetime.now(dt.timezone.utc)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                                 x509.NameAttribute(NameOID.COMMON_NAME, box_id)]))
        .issuer_name(ca.cert.subject)
        .public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), serial, not_before, not_after)


def write_crl(ca: Authority, revoked: list[tuple[int, dt.datetime]], path: Path | None = None) -> Path:
    """Write the CRL (PEM) listing ``(serial, revoked_at)``; atomically, since the broker may read it."""
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now - dt.timedelta(minutes=5))
               .next_update(now + CRL_LIFE))
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    crl = builder.sign(ca.key, hashes.SHA256())
    path = path or ca.crl_path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)
    return path
