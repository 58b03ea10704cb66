"""The broker as broker-config writes it: a box may publish only under its own id and reads nothing;
a revoked box is refused by the enrollment API (403) and, through the CRL, by the broker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cloudstack import Vendor, connections, reading, wait_for
from meterbox.box.enroll_client import EnrollClient, EnrollError, make_key_csr
from test_enroll import claim_over_http


def test_a_box_publishing_under_another_box_id_is_refused(vendor: Vendor) -> None:
    mine, other = vendor.mint(2)
    box = vendor.mqtt_client(*vendor.box_cert(mine.box), mine.box)
    listener = vendor.mqtt_client(*vendor.box_cert(other.box), other.box)
    assert box.connect() and listener.connect()
    heard: list[str] = []
    listener.client.on_message = lambda c, u, m: heard.append(m.topic)
    subscribed = threading.Event()
    listener.client.on_subscribe = lambda *a: subscribed.set()
    listener.client.subscribe("meterbox/#", qos=1)
    assert subscribed.wait(5)
    forged = reading(other.box, "SER-FORGED")
    honest = reading(mine.box, "SER-HONEST")
    refused = box.publish(f"meterbox/v1/{other.box}/readings", forged)
    accepted = box.publish(f"meterbox/v1/{mine.box}/readings", honest)
    refused.wait_for_publish(10)
    accepted.wait_for_publish(10)
    assert box.acks[refused.mid] == 135  # MQTT v5 PUBACK "Not authorized"
    assert box.acks[accepted.mid] == 0
    wait_for(lambda: vendor.db.query("SELECT 1 FROM meterbox_cloud_reading WHERE id = %s", honest["id"]), 20,
             "the honest reading in the database")
    assert not vendor.db.query("SELECT 1 FROM meterbox_cloud_reading WHERE id = %s", forged["id"])
    assert heard == []  # a box reads nothing, not even its own messages
    box.close()
    listener.close()


def test_a_revoked_box_is_refused_by_the_api_and_the_broker(vendor: Vendor, work: Path) -> None:
    (identity,) = vendor.mint(1)
    claim_over_http(vendor, identity.box, identity.claim_code)
    client = EnrollClient(identity.folder, ca_file=vendor.ca_file)
    result = client.enroll(make_key_csr(identity.folder))
    (work / "box.crt").write_text(result.certificate)
    connected = vendor.mqtt_client(work / "box.crt", identity.folder / "box.key", identity.box)
    assert connected.connect()
    dropped = threading.Event()
    connected.client.on_disconnect = lambda *a: dropped.set()
    workers_before = [connections(w) for w in vendor.workers]

    revoked = vendor.run("revoke", identity.box, "--broker-pid-file", vendor.broker_dir / "mosquitto.pid")
    assert "now refuses" in revoked.stdout, revoked.stdout
    with pytest.raises(EnrollError, match="revoked"):
        client.enroll(make_key_csr(identity.folder))
    # After the reload (SIGHUP, handled by Mosquitto's main loop a moment later) the certificate
    # no longer gets in ...
    wait_for(lambda: "Reloading config" in (vendor.broker_dir / "mosquitto.log").read_text(), 10,
             "the broker to reload its configuration and CRL")
    again = vendor.mqtt_client(work / "box.crt", identity.folder / "box.key", identity.box)
    assert not again.connect()
    again.client.loop_stop()
    wait_for(lambda: "certificate verify failed" in (vendor.broker_dir / "mosquitto.log").read_text(), 10,
             "the broker to log the refusal")
    # ... the connection open since before is still there, but what it sends is not billed ...
    assert not dropped.is_set()
    late = reading(identity.box, "SER-REVOKED")
    connected.publish(f"meterbox/v1/{identity.box}/readings", late).wait_for_publish(10)
    wait_for(lambda: vendor.db.query("SELECT 1 FROM meterbox_cloud_rejection WHERE payload LIKE %s",
                                     f"%{late['id']}%"), 20, "the rejection of the revoked box's reading")
    assert not vendor.db.query("SELECT 1 FROM meterbox_cloud_reading WHERE id = %s", late["id"])
    # ... and a restart cuts it off, for good.
    vendor.restart_broker()
    assert dropped.wait(10)
    connected.client.loop_stop()
    after_restart = vendor.mqtt_client(work / "box.crt", identity.folder / "box.key", identity.box)
    assert not after_restart.connect()
    after_restart.client.loop_stop()
    # Another box is still welcome, and the ingest workers came back on their own.
    (other,) = vendor.mint(1)
    welcome = vendor.mqtt_client(*vendor.box_cert(other.box), other.box)
    assert welcome.connect()
    welcome.close()
    for worker, before_count in zip(vendor.workers, workers_before):
        wait_for(lambda: connections(worker) > before_count, 40, f"{worker.name} to reconnect")
