"""The enrollment API against the real service: waiting, claimed, the certificate the broker accepts,
renewal, and every refusal (another key, replay, stale signature, revoked)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloudstack import Vendor, reading, wait_for
from meterbox.box.enroll_client import EnrollClient, EnrollError, make_key_csr
from meterbox_factory.pem import write_private_key


def claim_over_http(vendor: Vendor, box: str, code: str, site: str = "Main office") -> requests.Response:
    """The claim form as a browser submits it (CSRF cookie and token included)."""
    session = requests.Session()
    verify = str(vendor.ca_file)  # per call: REQUESTS_CA_BUNDLE would override session.verify
    page = session.get(f"{vendor.url}/claim", params={"box": box, "code": code}, timeout=10, verify=verify)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return session.post(f"{vendor.url}/claim", data={
        "csrfmiddlewaretoken": token.group(1), "box": box, "code": code, "email": "key.user@example.com",
        "site": site, "enroll": "auto"}, headers={"Referer": f"{vendor.url}/claim"}, timeout=30, verify=verify)


def enroll_client(vendor: Vendor, folder: Path) -> EnrollClient:
    return EnrollClient(folder, ca_file=vendor.ca_file)


def test_waiting_then_enrolled_with_a_certificate_the_broker_accepts(vendor: Vendor, work: Path) -> None:
    (identity,) = vendor.mint(1)
    client = enroll_client(vendor, identity.folder)
    csr = make_key_csr(identity.folder)
    waiting = client.enroll(csr)
    assert waiting.state == "waiting" and waiting.retry_after == 1.0 and identity.box in waiting.message
    assert vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_certificate c WHERE c.box_id = %s",
                            identity.box) == 0
    assert claim_over_http(vendor, identity.box, identity.claim_code).status_code == 200
    result = client.enroll(csr)
    assert result.state == "enrolled" and result.site == {"name": "Main office"}
    assert result.config["uplink"] == {"host": "localhost", "port": vendor.broker_port,
                                       "websockets_port": 443, "websockets_path": "/mqtt"}
    assert result.config["enroll"] == {"auto": True, "serials": []}
    assert result.config["poll"] == {"interval": "15m"}
    cert = x509.load_pem_x509_certificate(result.certificate.encode())
    root = x509.load_pem_x509_certificate(result.ca.encode())
    cert.verify_directly_issued_by(root)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == identity.box
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=90) <= life <= dt.timedelta(days=90, minutes=10)
    assert result.not_after == cert.not_valid_after_utc.replace(microsecond=0)
    assert result.renew_after is not None and result.not_after is not None
    assert abs((result.renew_after - cert.not_valid_before_utc) - life * 2 / 3) < dt.timedelta(seconds=2)

    # The real broker takes this certificate, and what the box sends reaches the vendor's books.
    (work / "box.crt").write_text(result.certificate)
    box = vendor.mqtt_client(work / "box.crt", identity.folder / "box.key", identity.box)
    assert box.connect(), vendor.broker.tail() if vendor.broker else ""
    message = reading(identity.box, "SER-ENROLL-1")
    info = box.publish(f"meterbox/v1/{identity.box}/readings", message)
    info.wait_for_publish(10)
    box.close()
    wait_for(lambda: vendor.db.query("SELECT id FROM meterbox_cloud_reading WHERE id = %s", message["id"]), 20,
             "the reading in the vendor's database")
    assert vendor.db.scalar("SELECT first_reading_at IS NOT NULL FROM meterbox_cloud_box WHERE id = %s",
                            identity.box)

    # Renewal: the same call again gives a new certificate for the same key.
    again = client.enroll(make_key_csr(identity.folder))
    renewed = x509.load_pem_x509_certificate(again.certificate.encode())
    assert renewed.serial_number != cert.serial_number and renewed.public_key() == cert.public_key()
    assert vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_certificate WHERE box_id = %s", identity.box) == 2


def test_a_request_signed_by_another_key_is_refused(vendor: Vendor, work: Path) -> None:
    (identity,) = vendor.mint(1)
    claim_over_http(vendor, identity.box, identity.claim_code)
    impostor = work / "impostor"
    impostor.mkdir()
    (impostor / "identity.json").write_text((identity.folder / "identity.json").read_text())
    write_private_key(impostor / "box.key", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EnrollError, match="does not know this box's key"):
        enroll_client(vendor, impostor).enroll(make_key_csr(impostor))
    assert vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_certificate WHERE box_id = %s", identity.box) == 0


def test_an_unknown_box_gets_the_same_answer_as_a_wrong_key(vendor: Vendor, work: Path) -> None:
    stranger = work / "stranger"
    stranger.mkdir()
    (stranger / "identity.json").write_text(f'{{"box": "MB-000000", "claim_code": "x", "vendor": "{vendor.url}"}}')
    write_private_key(stranger / "box.key", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EnrollError, match="does not know this box's key"):
        enroll_client(vendor, stranger).enroll(make_key_csr(stranger))


def test_a_replayed_request_is_refused(vendor: Vendor) -> None:
    (identity,) = vendor.mint(1)
    claim_over_http(vendor, identity.box, identity.claim_code)
    client = enroll_client(vendor, identity.folder)
    request = client.signed_request(make_key_csr(identity.folder))
    assert client.send(request.copy()).state == "enrolled"
    with pytest.raises(EnrollError, match="replay"):
        client.send(request.copy())
    assert vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_certificate WHERE box_id = %s", identity.box) == 1


@pytest.mark.parametrize("offset", [dt.timedelta(minutes=-6), dt.timedelta(minutes=6)])
def test_a_signature_created_outside_five_minutes_is_refused(vendor: Vendor, offset: dt.timedelta) -> None:
    (identity,) = vendor.mint(1)
    claim_over_http(vendor, identity.box, identity.claim_code)
    client = enroll_client(vendor, identity.folder)
    stale = client.signed_request(make_key_csr(identity.folder), created=dt.datetime.now(dt.timezone.utc) + offset)
    with pytest.raises(EnrollError, match="more than 5 minutes"):
        client.send(stale)
    within = client.signed_request(make_key_csr(identity.folder),
                                   created=dt.datetime.now(dt.timezone.utc) + offset * 0.5)
    assert client.send(within).state == "enrolled"


def test_a_tampered_body_is_refused(vendor: Vendor) -> None:
    (identity,) = vendor.mint(1)
    client = enroll_client(vendor, identity.folder)
    request = client.signed_request(make_key_csr(identity.folder))
    request.body = request.body.replace(b'"firmware": "', b'"firmware": "9')  # type: ignore[union-attr]
    request.headers["Content-Length"] = str(len(request.body))  # type: ignore[arg-type]
    with pytest.raises(EnrollError, match="Content-Digest"):
        client.send(request)


def test_an_unsigned_request_gets_401_json(vendor: Vendor) -> None:
    answer = requests.post(f"{vendor.url}/api/v1/enroll", json={"box": "MB-000000", "csr": "", "firmware": "0"},
                           verify=str(vendor.ca_file), timeout=10)
    assert answer.status_code == 401 and "not signed" in answer.json()["error"]


def test_tls_and_network_failures_are_one_clear_sentence(vendor: Vendor, work: Path) -> None:
    (identity,) = vendor.mint(1)
    with pytest.raises(EnrollError, match="TLS failed"):
        EnrollClient(identity.folder).enroll(make_key_csr(identity.folder))  # system CAs: not the vendor's
    (work / "gone").mkdir()
    (work / "gone" / "identity.json").write_text((identity.folder / "identity.json").read_text().replace(
        str(vendor.web_port), "1"))
    (work / "gone" / "box.key").write_bytes((identity.folder / "box.key").read_bytes())
    with pytest.raises(EnrollError, match="unreachable"):
        EnrollClient(work / "gone", ca_file=vendor.ca_file).enroll(make_key_csr(identity.folder))
