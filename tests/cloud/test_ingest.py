"""Ingest workers on the shared subscription: they split the load, a worker killed mid-stream loses
nothing and stores nothing twice, and payloads outside the wire contract are rejected and counted."""

from __future__ import annotations

import json
import re
import subprocess
import threading

from cloudstack import Publisher, Vendor, reading, wait_for


def stored_by(log: str) -> int:
    return sum(int(n) for n in re.findall(r"stored (\d+) messages \(", log))


def publish_all(publishers: list[tuple[str, Publisher]], per_box: int) -> list[str]:
    """Every box publishes ``per_box`` readings (each box from its own thread); returns the ids."""
    ids: list[list[str]] = [[] for _ in publishers]

    def run(i: int, box: str, publisher: Publisher) -> None:
        for n in range(per_box):
            body = reading(box, f"SER-{box}-{n % 5}", n)
            ids[i].append(body["id"])
            publisher.publish(f"meterbox/v1/{box}/readings", body)

    threads = [threading.Thread(target=run, args=(i, box, pub)) for i, (box, pub) in enumerate(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _, pub in publishers:
        wait_for(lambda: len(pub.acks) == per_box, 120, "the broker to acknowledge every reading")
        assert set(pub.acks.values()) == {0}
    return [i for chunk in ids for i in chunk]


def boxes_publishing(vendor: Vendor, count: int) -> list[tuple[str, Publisher]]:
    publishers = []
    for identity in vendor.mint(count):
        pub = vendor.mqtt_client(*vendor.box_cert(identity.box), identity.box)
        assert pub.connect()
        publishers.append((identity.box, pub))
    return publishers


def count_readings(vendor: Vendor, boxes: list[str]) -> int:
    return int(vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_reading WHERE box_id IN "
                                f"({','.join(['%s'] * len(boxes))})", *boxes))


def test_two_workers_split_the_load(vendor: Vendor) -> None:
    before = [stored_by(w.log()) for w in vendor.workers]
    publishers = boxes_publishing(vendor, 4)
    boxes = [box for box, _ in publishers]
    ids = publish_all(publishers, 250)
    wait_for(lambda: count_readings(vendor, boxes) == len(ids), 60, f"{len(ids)} readings stored")
    # Each worker stored a share (their logs count what they stored, once a second).
    def shares() -> list[int]:
        return [stored_by(w.log()) - b for w, b in zip(vendor.workers, before)]

    wait_for(lambda: sum(shares()) >= len(ids), 10, "the workers to log what they stored")
    assert all(share > len(ids) // 10 for share in shares()), shares()
    assert vendor.db.scalar("SELECT count(DISTINCT printer_id) FROM meterbox_cloud_reading WHERE box_id IN "
                            f"({','.join(['%s'] * len(boxes))})", *boxes) == 4 * 5
    for _, pub in publishers:
        pub.close()


def test_a_worker_killed_mid_stream_loses_nothing_and_stores_nothing_twice(vendor: Vendor) -> None:
    publishers = boxes_publishing(vendor, 4)
    boxes = [box for box, _ in publishers]
    per_box = 750
    total = per_box * len(publishers)
    ids: list[str] = []
    feeder = threading.Thread(target=lambda: ids.extend(publish_all(publishers, per_box)))
    feeder.start()
    wait_for(lambda: count_readings(vendor, boxes) >= total // 5, 60, "the first fifth stored")
    vendor.workers[0].kill()
    killed_at = count_readings(vendor, boxes)
    feeder.join()
    assert killed_at < total, "the kill came too late to be mid-stream"
    vendor.restart_worker(1)  # same client id: its session and its queued share are waiting
    wait_for(lambda: count_readings(vendor, boxes) == total, 120, f"all {total} readings stored")
    rows = vendor.db.query("SELECT id FROM meterbox_cloud_reading WHERE box_id IN "
                           f"({','.join(['%s'] * len(boxes))})", *boxes)
    assert sorted(r[0] for r in rows) == sorted(ids)  # every one, once
    for _, pub in publishers:
        pub.close()


def test_payloads_outside_the_contract_are_rejected_and_counted(vendor: Vendor) -> None:
    (identity,) = vendor.mint(1)
    box = identity.box
    pub = vendor.mqtt_client(*vendor.box_cert(box), box)
    assert pub.connect()
    extra = {**reading(box, "SER-X"), "ip": "192.0.2.10"}        # a field the contract does not name
    bad_meter = reading(box, "SER-X")
    bad_meter["meters"][0]["value"] = -5                          # a negative lifetime counter
    wrong_box = reading("MB-000001", "SER-X")                      # body names another box than the topic
    good = reading(box, "SER-X")
    sent = [pub.publish(f"meterbox/v1/{box}/readings", extra), pub.publish(f"meterbox/v1/{box}/readings", bad_meter),
            pub.publish(f"meterbox/v1/{box}/readings", wrong_box),
            pub.publish(f"meterbox/v1/{box}/readings", b"not json at all"),
            pub.publish(f"meterbox/v1/{box}/gossip", good),
            pub.publish(f"meterbox/v1/{box}/readings", good)]
    for info in sent:
        info.wait_for_publish(10)
    wait_for(lambda: vendor.db.query("SELECT 1 FROM meterbox_cloud_reading WHERE id = %s", good["id"]), 20,
             "the valid reading")
    rejected = wait_for(lambda: (lambda rows: rows if len(rows) == 5 else None)(vendor.db.query(
        "SELECT reason FROM meterbox_cloud_rejection WHERE topic LIKE %s ORDER BY id", f"meterbox/v1/{box}/%")),
        20, "five rejections")
    reasons = " | ".join(r[0] for r in rejected)
    assert "Additional properties" in reasons and "published under" in reasons and "not JSON" in reasons
    assert "-5" in reasons and "gossip" in reasons
    assert vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_reading WHERE box_id = %s", box) == 1
    assert json.loads(vendor.db.scalar("SELECT payload FROM meterbox_cloud_rejection WHERE reason LIKE %s",
                                       "%Additional%"))["ip"] == "192.0.2.10"
    pub.close()


def test_a_worker_told_to_stop_as_the_broker_goes_away_stops(vendor: Vendor) -> None:
    """SIGTERM to the whole deployment at once (a demo stopped, a host shut down): the worker is asked
    to stop while connected and its broker vanishes before it leaves. It must exit, not reconnect
    to a broker that is gone for ever."""
    import os
    import signal

    worker = vendor.workers[1]
    assert worker.proc is not None
    pid = worker.proc.pid
    os.kill(pid, signal.SIGSTOP)          # the order of events made certain: the stop request first,
    os.kill(pid, signal.SIGTERM)          # then the broker gone, then the worker runs again
    assert vendor.broker is not None
    vendor.broker.kill()
    os.kill(pid, signal.SIGCONT)
    try:
        worker.proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    log, stopped = worker.log(), not worker.running
    if not stopped:
        worker.kill()
    vendor.start_broker()
    vendor.restart_worker(2)
    assert stopped, f"the worker did not stop:\n{log[-2000:]}"
    assert "ingest worker ingest-test-2 stopped:" in log
