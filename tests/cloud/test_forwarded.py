"""Behind a load balancer (forwarded.py): the claim page's rate limit counts the office's address and
an enrollment signature over the URL the box dialled verifies; headers from anyone but the named
balancer change nothing. The "balancer" is this test connecting from 127.0.0.2 (LOAD_BALANCER)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

from cloudstack import LOAD_BALANCER, Vendor
from meterbox.box.enroll_client import EnrollClient, make_key_csr


def via(vendor: Vendor, source: str, method: str, path: str, body: bytes = b"",
        headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """One HTTPS request to the vendor from SOURCE (127.0.0.1: a client; LOAD_BALANCER: the balancer)."""
    context = ssl.create_default_context(cafile=str(vendor.ca_file))
    port = int(vendor.url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, source_address=(source, 0), timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read().decode(errors="replace"), {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()


def claim_tries(vendor: Vendor, source: str, box: str, code: str, forwarded_for: str, n: int) -> list[int]:
    """N claim submissions (CSRF cookie and token included) from SOURCE, for the office FORWARDED_FOR."""
    statuses = []
    for _ in range(n):
        status, page, headers = via(vendor, source, "GET", f"/claim?box={box}&code={code}",
                                    headers={"X-Forwarded-For": forwarded_for})
        cookie = headers["set-cookie"].split(";")[0]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert status == 200 and token, page
        form = f"csrfmiddlewaretoken={token.group(1)}&box={box}&code={code}&email=k%40example.com&site=S&enroll=auto"
        status, _, _ = via(vendor, source, "POST", "/claim", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "X-Forwarded-For": forwarded_for,
            "Referer": f"{vendor.url}/claim", "Host": vendor.url.removeprefix("https://")})
        statuses.append(status)
    return statuses


def test_the_rate_limit_counts_the_office_behind_the_balancer_not_the_balancer(vendor: Vendor) -> None:
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")
    boxes = vendor.mint(3)
    # office A guesses five times through the balancer: A is blocked ...
    assert claim_tries(vendor, LOAD_BALANCER, boxes[0].box, "AAAA-AAAA-AAAA", "203.0.113.7", 5) == [400] * 5
    assert claim_tries(vendor, LOAD_BALANCER, boxes[1].box, "AAAA-AAAA-AAAA", "203.0.113.7", 1) == [429]
    # ... office B, through the same balancer, is not (its own box, its own address: the right-hand
    # entry, the one the balancer wrote; the left-hand one B wrote itself)
    assert claim_tries(vendor, LOAD_BALANCER, boxes[2].box, "AAAA-AAAA-AAAA", "10.9.8.7, 203.0.113.99", 1) == [400]
    assert claim_tries(vendor, LOAD_BALANCER, boxes[2].box, boxes[2].claim_code, "10.9.8.7, 203.0.113.99", 1) == [302]
    assert vendor.db.scalar("SELECT site_id FROM meterbox_cloud_box WHERE id = %s", boxes[2].box) is not None
    addresses = {a for (a,) in vendor.db.query("SELECT DISTINCT address FROM meterbox_cloud_claimattempt")}
    assert addresses == {"203.0.113.7", "203.0.113.99"}, addresses
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")


def test_a_client_that_forges_forwarded_headers_is_still_counted_by_its_own_address(vendor: Vendor) -> None:
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")
    (box,) = vendor.mint(1)
    tries = [claim_tries(vendor, "127.0.0.1", box.box, "AAAA-AAAA-AAAA", f"198.51.100.{n}", 1)[0] for n in range(6)]
    assert tries == [400] * 5 + [429]
    addresses = {a for (a,) in vendor.db.query("SELECT DISTINCT address FROM meterbox_cloud_claimattempt")}
    assert addresses == {"127.0.0.1"}
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")


def test_an_enrollment_signed_for_the_public_url_verifies_behind_the_balancer(vendor: Vendor, work: Path) -> None:
    (identity,) = vendor.mint(1)
    public = work / "public"                                  # the box dialled https://vendor.example/...
    shutil.copytree(identity.folder, public)
    data = json.loads((public / "identity.json").read_text())
    (public / "identity.json").write_text(json.dumps({**data, "vendor": "https://vendor.example"}))
    client = EnrollClient(public)

    def send(source: str) -> tuple[int, str]:
        prepared = client.signed_request(make_key_csr(public))
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "host"}
        headers.update({"X-Forwarded-Host": "vendor.example", "X-Forwarded-Proto": "https",
                        "X-Forwarded-For": "192.0.2.44"})
        status, text, _ = via(vendor, source, "POST", "/api/v1/enroll", prepared.body, headers)  # type: ignore[arg-type]
        return status, text

    status, text = send("127.0.0.1")                        # not the balancer: its headers are ignored
    assert status == 401 and "signature" in text.lower(), (status, text)
    status, text = send(LOAD_BALANCER)
    assert status == 202 and json.loads(text)["state"] == "waiting", (status, text)   # verified: not claimed yet


def test_a_trusted_proxy_that_is_no_address_is_one_clear_error(vendor: Vendor, work: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "meterbox_cloud", "serve", "--ca-dir", vendor.ca_dir,
                           "--tls-cert", vendor.ca_dir / "server.crt", "--tls-key", vendor.ca_dir / "server.key",
                           "--port", "1", "--no-migrate", "--secret-file", work / "secret",
                           "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "balancer.example"],
                          capture_output=True, text=True, timeout=60, cwd=work,
                          env={"METERBOX_CLOUD_DB": vendor.db_url, "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'balancer.example' is not an IP address or network" in lines[0], done.stderr
