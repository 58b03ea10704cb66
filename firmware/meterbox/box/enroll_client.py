"""The box's side of the enrollment API: one signed HTTPS call that returns its site configuration
and client certificate once the box is claimed.

Each request is signed with the box's own key (``box.key`` from the factory) as an RFC 9421 HTTP
Message Signature (ecdsa-p256-sha256, keyid = box id, covering @method, @target-uri and
content-digest, with created and a fresh nonce), so the vendor knows the box without any
shared secret and a captured request cannot be replayed. A pure library: the daemon decides when
to call it, honours ``retry_after``, and writes what it returns.

Example::

    client = EnrollClient(Path("/etc/meterbox/identity"))
    result = client.enroll(make_key_csr(Path("/etc/meterbox/identity")))
    if result.state == "waiting":
        time.sleep(result.retry_after)
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from meterbox import __version__
from meterbox.errors import MeterboxError

ENROLL_PATH = "/api/v1/enroll"
DEFAULT_RETRY = 5.0


class EnrollError(MeterboxError):
    """Enrollment failed; str() says what is wrong and what to do."""

    code = "enroll"


class EnrollRevoked(EnrollError):
    """The vendor revoked this box: no certificate, and the broker refuses the old one."""

    code = "revoked"


@dataclass(frozen=True)
class EnrollResult:
    """The vendor's answer: ``waiting`` (not claimed yet; call again after ``retry_after`` seconds)
    or ``enrolled`` (``config``, ``certificate``, ``ca``, ``not_after``, ``renew_after``)."""

    state: str
    retry_after: float | None = None
    message: str = ""
    site: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    certificate: str = ""
    ca: str = ""
    not_after: dt.datetime | None = None
    renew_after: dt.datetime | None = None


@dataclass(frozen=True)
class _Identity:
    box: str
    vendor: str
    key: ec.EllipticCurvePrivateKey


def _load_identity(identity_dir: Path) -> _Identity:
    path = identity_dir / "identity.json"
    try:
        data = json.loads(path.read_text())
        box, vendor = str(data["box"]), str(data["vendor"]).rstrip("/")
        key = serialization.load_pem_private_key((identity_dir / "box.key").read_bytes(), password=None)
    except FileNotFoundError as err:
        raise EnrollError(f"box identity incomplete: {err.filename} is missing; this box's identity files "
                          f"from the factory must be in {identity_dir}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise EnrollError(f"box identity in {identity_dir} is damaged ({err}); restore identity.json and "
                          f"box.key from the factory's copy for this box") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise EnrollError(f"{identity_dir / 'box.key'} is not an EC P-256 key; restore it from the factory")
    return _Identity(box=box, vendor=vendor, key=key)


def make_key_csr(identity_dir: Path) -> bytes:
    """A PEM certificate signing request from the box's own key, CN = box id."""
    identity = _load_identity(identity_dir)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.box)]))
           .sign(identity.key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


class _OwnKey(HTTPSignatureKeyResolver):
    """The signer's key resolver: only the box's own key, under its own id."""

    def __init__(self, box: str, key: ec.EllipticCurvePrivateKey) -> None:
        self.box, self.key = box, key

    def resolve_private_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        if key_id != self.box:
            raise KeyError(key_id)
        return self.key

    def resolve_public_key(self, key_id: str) -> None:
        return None


def _parse_time(text: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if isinstance(text, str) else None


class EnrollClient:
    """Enrolls the box whose identity (``identity.json``, ``box.key``) is in ``identity_dir``.

    ``ca_file`` is the CA that the vendor's HTTPS certificate must chain to (default: the system's
    trust store); ``session`` lets the caller set a proxy or reuse connections.
    """

    def __init__(self, identity_dir: Path, session: requests.Session | None = None, ca_file: Path | None = None,
                 *, firmware: str = __version__, timeout: float = 20.0) -> None:
        self.identity = _load_identity(identity_dir)
        self.session = session or requests.Session()
        self.ca_file = ca_file
        self.firmware = firmware
        self.timeout = timeout
        self.url = self.identity.vendor + ENROLL_PATH
        self._signer = HTTPMessageSigner(signature_algorithm=algorithms.ECDSA_P256_SHA256,
                                         key_resolver=_OwnKey(self.identity.box, self.identity.key))

    @property
    def box(self) -> str:
        return self.identity.box

    def signed_request(self, csr_pem: bytes, *, created: dt.datetime | None = None) -> requests.PreparedRequest:
        """The enrollment request, signed now with a fresh nonce (tests also replay and back-date it)."""
        body = json.dumps({"box": self.identity.box, "csr": csr_pem.decode("ascii"),
                           "firmware": self.firmware}).encode()
        prepared = self.session.prepare_request(requests.Request(
            "POST", self.url, data=body, headers={"Content-Type": "application/json"}))
        self._signer.sign(prepared, key_id=self.identity.box, created=created or dt.datetime.now(dt.timezone.utc),
                          nonce=secrets.token_urlsafe(18), covered_component_ids=("@method", "@target-uri"),
                          body=body)
        return prepared

    def enroll(self, csr_pem: bytes) -> EnrollResult:
        """One signed call: ``waiting`` with ``retry_after``, or ``enrolled``; :class:`EnrollError` otherwise."""
        return self.send(self.signed_request(csr_pem))

    def send(self, prepared: requests.PreparedRequest) -> EnrollResult:
        """Send a signed request and interpret the answer."""
        host = urllib.parse.urlsplit(self.url).netloc
        try:
            response = self.session.send(prepared, timeout=self.timeout,
                                         verify=str(self.ca_file) if self.ca_file else True)
        except requests.exceptions.SSLError as err:
            trust = f"the CA in {self.ca_file}" if self.ca_file else "the system's trusted CAs"
            raise EnrollError(f"vendor {host}: TLS failed, its certificate is not trusted by {trust} "
                              f"({_reason(err)}); check the box's clock and that {host} is the vendor") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            raise EnrollError(f"vendor {host} unreachable ({_reason(err)}); check that the office network "
                              f"allows HTTPS to {host}; the box will try again") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        said = str(answer.get("error") or answer.get("message") or response.reason)
        if response.status_code == 202:
            return EnrollResult(state="waiting", retry_after=_retry_after(response), message=said)
        if response.status_code == 200 and answer.get("state") == "enrolled":
            try:
                return EnrollResult(state="enrolled", site=dict(answer["site"]), config=dict(answer["config"]),
                                    certificate=str(answer["certificate"]), ca=str(answer["ca"]),
                                    not_after=_parse_time(answer["not_after"]),
                                    renew_after=_parse_time(answer["renew_after"]), message=said)
            except (KeyError, TypeError, ValueError) as err:
                raise EnrollError(f"vendor {host} answered enrollment without {err}; "
                                  f"the vendor service may be a wrong version") from None
        if response.status_code == 401:
            raise EnrollError(f"vendor {host} refused box {self.identity.box}'s signed request: {said}")
        if response.status_code == 403:
            raise EnrollRevoked(f"vendor {host}: box {self.identity.box} is revoked ({said}); it cannot send "
                              f"readings until the vendor reinstates it")
        raise EnrollError(f"vendor {host} answered enrollment with HTTP {response.status_code}: {said}")


def _retry_after(response: requests.Response) -> float:
    try:
        return min(3600.0, max(1.0, float(response.headers.get("Retry-After", DEFAULT_RETRY))))
    except ValueError:
        return DEFAULT_RETRY


def _reason(err: Exception) -> str:
    """The innermost reason of a requests error, one line."""
    text = str(err.args[0] if err.args else err)
    for marker in ("SSLError(", "NewConnectionError(", "ConnectTimeoutError(", "ReadTimeoutError("):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.splitlines()[0][:200]
