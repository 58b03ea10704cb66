"""From the factory to the vendor's books, every part real: a minted box, its label decoded by
zbarimg, the real `meterbox run` started unconfigured against simulated printers, the claim page
in headless Chromium on a phone-sized window, the box enrolling by itself, Mosquitto with the
generated configuration, two ingest workers, and the first readings in the vendor's database."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cloudstack import Vendor, phone_browser, scan_label, wait_for
from support.cli import run_cli
from support.daemon import Daemon
from support.snmpsim import Simulator

PRINTERS = {"jetdirect_m130nw": "VNCRC48198", "konica_c250i": "AA2M021115700"}


def box_config(work: Path, identity: Path, vendor: Vendor, printers: Simulator) -> Path:
    """What the image ships: the factory identity and local settings; no [uplink], no box id."""
    lines = ["[box]", f'identity = "{identity}"', f'state_dir = "{work / "state"}"',
             f'runtime_dir = "{work / "run"}"', f'vendor_ca_file = "{vendor.ca_file}"', "",
             "[poll]", 'interval = "1s"', 'timeout = "500ms"', "", "[discovery]", "enabled = false", ""]
    for address, community in zip(printers.addresses, PRINTERS):
        lines += ["[[printers]]", f'host = "{address}"', f'community = "{community}"', ""]
    path = work / "meterbox.toml"
    path.write_text("\n".join(lines))
    return path


def stored_readings(vendor: Vendor, box: str) -> list[tuple[str, str]]:
    return vendor.db.query("SELECT r.id, p.serial FROM meterbox_cloud_reading r JOIN meterbox_cloud_printer p "
                           "ON p.id = r.printer_id WHERE r.box_id = %s", box)


def test_scan_claim_and_the_first_readings_are_in_the_vendors_database(
        vendor: Vendor, printers: Simulator, work: Path) -> None:
    from selenium.webdriver.common.by import By

    (identity,) = vendor.mint(1)
    url = scan_label(identity, work)
    assert url == f"{vendor.url}/claim?box={identity.box}&code={identity.claim_code}"
    config = box_config(work, identity.folder, vendor, printers)

    with Daemon(config, work) as box:
        box.wait_log(r"not claimed yet")
        box.wait_log(r"waiting to be claimed")
        status = json.loads(run_cli("enroll", "--status", "--json", "--config", str(config)))
        assert status["box"] == identity.box and status["state"] == "waiting" and status["site"] is None
        assert "waiting to be claimed" in run_cli("status", "--config", str(config))
        assert not stored_readings(vendor, identity.box)   # readings wait on the box until it is claimed

        with phone_browser() as driver:
            driver.get(url)
            driver.find_element(By.ID, "email").send_keys("key.user@example.com")
            driver.find_element(By.ID, "site").send_keys("Front office")
            driver.find_element(By.ID, "claim").click()
            submitted = time.monotonic()
            found = wait_for(lambda: stored_readings(vendor, identity.box), 30, "the box's first reading at the vendor")
            took = time.monotonic() - submitted
            wait_for(lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "reporting",
                     20, "the claim page to show the first reading")
        print(f"\nclaim to first reading: {took:.1f} s")
        box.wait_log(r"enrollment: claimed for site 'Front office'")
        wait_for(lambda: {serial for _, serial in stored_readings(vendor, identity.box)} == set(PRINTERS.values()),
                 30, "readings of both printers")
        status = json.loads(run_cli("enroll", "--status", "--json", "--config", str(config)))
        assert status["state"] == "enrolled" and status["site"]["name"] == "Front office"
        assert found
    # the site files are the box's only: readable by the service user alone
    site = work / "state" / "site"
    assert (site / "site.json").stat().st_mode & 0o077 == 0
    assert "Traceback" not in box.log()


def test_a_paused_unclaimed_box_makes_no_enrollment_call(vendor: Vendor, printers: Simulator, work: Path) -> None:
    (identity,) = vendor.mint(1)
    config = box_config(work, identity.folder, vendor, printers)
    run_cli("pause", "--config", str(config))
    with Daemon(config, work) as box:
        box.wait_log(r"uploads are paused")
        box.wait_log(r"printer VNCRC48198 .*: \d+ meters")   # it polls on, locally
        assert vendor.db.scalar("SELECT last_enroll_at FROM meterbox_cloud_box WHERE id = %s", identity.box) is None
        assert json.loads(run_cli("enroll", "--status", "--json", "--config", str(config)))["state"] == "paused"
        run_cli("resume", "--config", str(config))
        wait_for(lambda: vendor.db.scalar("SELECT last_enroll_at FROM meterbox_cloud_box WHERE id = %s",
                                          identity.box) is not None, 20, "the enrollment call after resume")


def test_a_claim_that_enrolls_one_printer_sends_nothing_of_the_other_not_even_its_backlog(
        vendor: Vendor, printers: Simulator, work: Path) -> None:
    """The box reads both printers while it waits to be claimed; the key user enrolls only the HP:
    the Konica's readings taken before the claim stay on the box."""
    import re

    import requests

    (identity,) = vendor.mint(1)
    config = box_config(work, identity.folder, vendor, printers)
    with Daemon(config, work) as box:
        box.wait_status(lambda s: len(s["printers"]) == 2 and s["backlog"] >= 4, timeout=30)
        session = requests.Session()
        page = session.get(f"{vendor.url}/claim", params={"box": identity.box, "code": identity.claim_code},
                           verify=str(vendor.ca_file), timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text
        claimed = session.post(f"{vendor.url}/claim", data={
            "csrfmiddlewaretoken": token.group(1), "box": identity.box, "code": identity.claim_code,
            "email": "key.user@example.com", "site": "One printer office", "enroll": "list",
            "serials": PRINTERS["jetdirect_m130nw"]}, headers={"Referer": f"{vendor.url}/claim"},
            verify=str(vendor.ca_file), timeout=30)
        assert claimed.status_code == 200, claimed.text
        wait_for(lambda: len([s for _, s in stored_readings(vendor, identity.box)]) >= 3, 30, "the HP's readings")
        box.wait_log(r"stored messages of printers the office did not enroll stay on the box")
        status = box.status()
    serials = {serial for _, serial in stored_readings(vendor, identity.box)}
    assert serials == {PRINTERS["jetdirect_m130nw"]}, serials
    devices = vendor.db.query("SELECT serial FROM meterbox_cloud_printer WHERE box_id = %s", identity.box)
    assert {s for (s,) in devices} == {PRINTERS["jetdirect_m130nw"]}, devices
    assert any(r["serial"] == PRINTERS["konica_c250i"] and "not enrolled" in r["reason"] for r in status["refused"])
