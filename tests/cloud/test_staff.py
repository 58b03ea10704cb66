"""The staff pages (login required): sites -> boxes (state, heartbeat, firmware) -> printers with their
latest meters and supplies, as the ingest stored them; and the Django admin with its own styles."""

from __future__ import annotations

import re

import requests

from cloudstack import STAFF_PASSWORD, Vendor, reading, ulid, wait_for
from test_enroll import claim_over_http


def staff_session(vendor: Vendor) -> requests.Session:
    session = requests.Session()
    verify = str(vendor.ca_file)
    login = session.get(f"{vendor.url}/staff/login/", verify=verify, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    assert token
    answer = session.post(f"{vendor.url}/staff/login/", verify=verify, timeout=10, data={
        "csrfmiddlewaretoken": token.group(1), "username": "staff", "password": STAFF_PASSWORD, "next": "/staff/"},
        headers={"Referer": f"{vendor.url}/staff/login/"})
    assert answer.status_code == 200 and "Sites" in answer.text, answer.text[:500]
    return session


def test_staff_pages_show_sites_boxes_printers_and_latest_meters(vendor: Vendor) -> None:
    anonymous = requests.get(f"{vendor.url}/staff/", verify=str(vendor.ca_file), timeout=10, allow_redirects=False)
    assert anonymous.status_code == 302 and "/staff/login/" in anonymous.headers["Location"]
    (identity,) = vendor.mint(1)
    box = identity.box
    claim_over_http(vendor, box, identity.claim_code, site="Staff page office")
    pub = vendor.mqtt_client(*vendor.box_cert(box), box)
    assert pub.connect()
    pub.publish(f"meterbox/v1/{box}/devices", {"v": 1, "id": ulid(), "box": box, "serial": "SER-STAFF",
                                               "manufacturer": "Kyocera", "model": "ECOSYS M3145dn"})
    older, newer = reading(box, "SER-STAFF", 1), reading(box, "SER-STAFF", 777)
    older["read_at"], newer["read_at"] = "2026-11-24T09:00:00Z", "2026-11-24T10:00:00Z"
    pub.publish(f"meterbox/v1/{box}/readings", newer)
    pub.publish(f"meterbox/v1/{box}/readings", older)  # arrives last, but is not the latest reading
    pub.publish(f"meterbox/v1/{box}/status", {"v": 1, "id": ulid(), "box": box, "firmware": "0.1.0", "clock": "ntp",
                                              "backlog": 3, "printers_seen": 2, "printers_reported": 1}
                ).wait_for_publish(10)
    wait_for(lambda: vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_heartbeat WHERE box_id = %s", box)
             and vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_reading WHERE box_id = %s", box) == 2,
             20, "the messages stored")
    pub.close()
    session = staff_session(vendor)
    sites = session.get(f"{vendor.url}/staff/", verify=str(vendor.ca_file), timeout=10).text
    assert "Staff page office" in sites and box in sites and "key.user@example.com" in sites
    page = session.get(f"{vendor.url}/staff/box/{box}", verify=str(vendor.ca_file), timeout=10).text
    assert "SER-STAFF" in page and "Kyocera ECOSYS M3145dn" in page
    assert "100777 impressions" in page and "100001" not in page  # the latest reading by read_at
    assert "toner.black" in page and "backlog 3" in page and "0.1.0" in page and "2026-11-24 10:00:00" in page
    admin = session.get(f"{vendor.url}/admin/meterbox_cloud/box/{box}/change/", verify=str(vendor.ca_file),
                        timeout=10)
    assert admin.status_code == 200 and box in admin.text
    css = session.get(f"{vendor.url}/static/admin/css/base.css", verify=str(vendor.ca_file), timeout=10)
    assert css.status_code == 200 and "body" in css.text
