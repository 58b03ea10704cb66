"""Benchmark P10: readings stored per second into PostgreSQL by the vendor's ingest workers.

Run (as root: it makes a PostgreSQL 15 cluster as the postgres user in a temporary directory):

    .venv/bin/python bench/ingest.py [--boxes 50] [--readings 20000] [--workers 1 2]

Everything is the real thing, on 127.0.0.1: a PostgreSQL cluster, Mosquitto with the
configuration `python -m meterbox_cloud broker-config` writes (mutual TLS, ACL), and ingest
workers started as `python -m meterbox_cloud ingest`. Many simulated boxes (each with its own
client certificate, as the ACL requires) publish valid wire-contract readings (4 meters, 4
supplies) at QoS 1 while the workers are stopped, so their persistent sessions hold the queue;
then the workers start and the figure is the drain rate: readings committed per second, from the
first stored to the last, counted in the database. Publishing first keeps the simulated boxes from
competing with the workers for this machine's CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "cloud")]

from cloudstack import Postgres, Vendor, reading, wait_for  # noqa: E402

BOX_PRINTERS, BOX_INTERVAL = 50, 15 * 60  # a busy office: 50 printers read every 15 minutes


def publish(vendor: Vendor, boxes: list[str], total: int) -> float:
    """Every box publishes its share of ``total`` readings at QoS 1; returns the seconds it took."""
    publishers = []
    for box in boxes:
        pub = vendor.mqtt_client(*vendor.box_cert(box), box)
        assert pub.connect(), f"{box} could not connect"
        publishers.append((box, pub))
    per_box = total // len(boxes)
    started = time.monotonic()

    def run(box: str, pub: object) -> None:
        for n in range(per_box):
            pub.publish(f"meterbox/v1/{box}/readings", reading(box, f"SER-{box}-{n % BOX_PRINTERS}", n))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=run, args=p) for p in publishers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _, pub in publishers:
        wait_for(lambda: len(pub.acks) == per_box, 300, "the broker to acknowledge every reading")
        pub.close()
    return time.monotonic() - started


def count(vendor: Vendor) -> int:
    return int(vendor.db.scalar("SELECT count(*) FROM meterbox_cloud_reading"))


def run_once(vendor: Vendor, boxes: list[str], workers: int, total: int) -> float:
    # Sessions first: each worker subscribes once, then stops; the broker queues its share.
    procs = [vendor.start_worker(n) for n in range(1, workers + 1)]
    for p in procs:
        p.stop()
    base = count(vendor)
    took = publish(vendor, boxes, total)
    print(f"  published {total:,} readings from {len(boxes)} boxes in {took:.1f} s; starting {workers} worker(s)",
          flush=True)
    procs = [vendor.start_worker(n) for n in range(1, workers + 1)]
    wait_for(lambda: count(vendor) > base, 60, "the first reading stored", every=0.01)
    first, first_count = time.monotonic(), count(vendor)
    wait_for(lambda: count(vendor) >= base + total, 600, f"{total} readings stored", every=0.05)
    elapsed = time.monotonic() - first
    for p in procs:
        p.stop()
    return (base + total - first_count) / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boxes", type=int, default=50)
    p.add_argument("--readings", type=int, default=20_000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    pg = Postgres().start()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    vendor = Vendor(work, pg.create_database("bench"), workers=0)
    try:
        vendor.prepare()
        vendor.start_broker()
        boxes = [i.box for i in vendor.mint(args.boxes)]
        results = {}
        for workers in args.workers:
            print(f"{workers} worker(s):", flush=True)
            results[workers] = run_once(vendor, boxes, workers, args.readings)
            print(f"  stored {results[workers]:,.0f} readings/s", flush=True)
        print("\nP10 ingest into PostgreSQL 15 (target >= 2,000 readings/s per worker; more workers, more):")
        for workers, rate in results.items():
            per_box = BOX_PRINTERS / BOX_INTERVAL
            print(f"  {workers} worker(s): {rate:,.0f} readings/s = {rate / workers:,.0f} per worker; "
                  f"enough for {rate / per_box:,.0f} boxes of {BOX_PRINTERS} printers read every "
                  f"{BOX_INTERVAL // 60} min")
    finally:
        vendor.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
