"""The claim page: a phone claims a box in headless Chromium and watches it connect; wrong codes,
unknown boxes and second claims are refused clearly and rate-limited; release lets a box be claimed again."""

from __future__ import annotations

import re
import time
from pathlib import Path

from cloudstack import Vendor, phone_browser, reading, scan_label, wait_for
from meterbox.box.enroll_client import EnrollClient, make_key_csr
from test_enroll import claim_over_http

NO_MATCH = "do not match a box waiting to be claimed"


def test_wrong_code_and_unknown_box_get_the_same_refusal_and_nothing_is_claimed(vendor: Vendor) -> None:
    (identity,) = vendor.mint(1)
    wrong = claim_over_http(vendor, identity.box, "AAAA-AAAA-AAAA")
    unknown = claim_over_http(vendor, "MB-000000", identity.claim_code)
    assert wrong.status_code == unknown.status_code == 400
    assert NO_MATCH in wrong.text and NO_MATCH in unknown.text
    assert vendor.db.scalar("SELECT site_id FROM meterbox_cloud_box WHERE id = %s", identity.box) is None
    # The code is forgiving about how it is typed: lower case, no dashes, O for zero.
    typed = identity.claim_code.lower().replace("-", " ").replace("0", "o")
    assert claim_over_http(vendor, identity.box.lower(), typed).status_code == 200


def test_a_second_claim_is_refused_until_the_vendor_releases_the_box(vendor: Vendor) -> None:
    (identity,) = vendor.mint(1)
    assert claim_over_http(vendor, identity.box, identity.claim_code, site="First office").status_code == 200
    second = claim_over_http(vendor, identity.box, identity.claim_code, site="Someone else")
    assert second.status_code == 409 and "already claimed" in second.text
    assert vendor.db.scalar("SELECT s.name FROM meterbox_cloud_box b JOIN meterbox_cloud_site s "
                            "ON s.id = b.site_id WHERE b.id = %s", identity.box) == "First office"
    vendor.run("release", identity.box)
    assert claim_over_http(vendor, identity.box, identity.claim_code, site="Second office").status_code == 200
    assert vendor.db.scalar("SELECT s.name FROM meterbox_cloud_box b JOIN meterbox_cloud_site s "
                            "ON s.id = b.site_id WHERE b.id = %s", identity.box) == "Second office"


def test_guessing_is_rate_limited_per_box_and_per_address(vendor: Vendor) -> None:
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")  # every test claims from 127.0.0.1
    (identity,) = vendor.mint(1)
    for _ in range(5):
        assert claim_over_http(vendor, identity.box, "AAAA-AAAA-AAAA").status_code == 400
    blocked = claim_over_http(vendor, identity.box, identity.claim_code)  # even the right code, for now
    assert blocked.status_code == 429
    assert re.search(r"try again in (10|9) minutes", blocked.text), blocked.text
    assert vendor.db.scalar("SELECT site_id FROM meterbox_cloud_box WHERE id = %s", identity.box) is None
    # Per client address too: the test's address has now failed 5 times, so another box is blocked as well.
    (other,) = vendor.mint(1)
    assert claim_over_http(vendor, other.box, other.claim_code).status_code == 429
    vendor.db.query("DELETE FROM meterbox_cloud_claimattempt")  # let the other tests claim from 127.0.0.1
    assert claim_over_http(vendor, other.box, other.claim_code).status_code == 200


def test_claim_in_chromium_on_a_phone_then_watch_the_box_connect(vendor: Vendor, work: Path) -> None:
    from selenium.webdriver.common.by import By

    (identity,) = vendor.mint(1)
    url = scan_label(identity, work)
    assert url == f"{vendor.url}/claim?box={identity.box}&code={identity.claim_code}"
    client = EnrollClient(identity.folder, ca_file=vendor.ca_file)
    csr = make_key_csr(identity.folder)
    assert client.enroll(csr).state == "waiting"

    with phone_browser() as driver:
        driver.get(url)
        assert driver.find_element(By.ID, "box").get_attribute("value") == identity.box
        assert driver.find_element(By.ID, "code").get_attribute("value") == identity.claim_code
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} px wide on a 360 px phone"
        driver.find_element(By.ID, "email").send_keys("key.user@example.com")
        driver.find_element(By.ID, "site").send_keys("Phone office")
        driver.find_element(By.ID, "claim").click()
        submitted = time.monotonic()
        wait_for(lambda: driver.find_elements(By.ID, "step-enrolled"), 10, "the live status page")
        assert "waiting for the box" in driver.find_element(By.ID, "step-enrolled").text

        # The box's next call gets its certificate; it connects and sends a reading.
        result = client.enroll(csr)
        assert result.state == "enrolled" and result.site == {"name": "Phone office"}
        (work / "box.crt").write_text(result.certificate)
        box = vendor.mqtt_client(work / "box.crt", identity.folder / "box.key", identity.box)
        assert box.connect()
        box.publish(f"meterbox/v1/{identity.box}/readings", reading(identity.box, "SER-PHONE")).wait_for_publish(10)
        wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "reporting",
                 20, "the page to show the first reading")
        print(f"claim to first reading: {time.monotonic() - submitted:.1f} s (page shown to the key user)")
        enrolled = driver.find_element(By.ID, "step-enrolled").text
        first = driver.find_element(By.ID, "step-reading").text
        assert re.search(r"after \d+\.\d s", enrolled) and re.search(r"after \d+\.\d s", first), (enrolled, first)
        box.close()
