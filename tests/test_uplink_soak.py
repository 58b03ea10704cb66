"""Soak: the uplink stays up for minutes while many printers publish and the broker is busy.

The daemon itself (its parts from build(), run by Daemon.run on this test's event loop) talks
to a real Mosquitto with mutual TLS and a short keepalive (3 s); 50 "printers" hand readings
to its commit buffer at random moments, as its pollers do, and its own store, pump and
heartbeat do the rest. Meanwhile other clients load the broker (mosquitto_pub at QoS 1,
mosquitto_sub receiving it all). At the end: not one disconnect (the uplink's CONNACK count
and Mosquitto's own log), and every reading arrived at the vendor's subscriber once,
byte-identical to what the store sent, in each printer's order.

Before the socket had one owner (paho's loop in a thread of ours while publish() wrote the
same TLS socket from the event loop), this test saw 8 and 9 disconnects in two runs of 3 minutes,
with "decryption failed or bad record mac" / "Protocol error" in Mosquitto's log, and the box
blamed its certificate for 5 and 6 of them.

SOAK_SECONDS (default 180) sets how long the printers publish.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import pytest
from meterbox.box.daemon import Daemon, build
from meterbox.config import load
from meterbox.errors import UplinkError
from meterbox.outbox.clock import FileClock
from meterbox.outbox.store import Store
from meterbox.printers.reading import Device, Meter, Reading, Supply
from support import INSTALL_MOSQUITTO, require
from support.broker import Broker
from support.daemon import BOX_ID, BoxConfig
from support.pki import INGEST_ID, Pki
from support.process import spawn, terminate
from support.subscriber import Subscriber

pytestmark = pytest.mark.slow  # a little over three minutes

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "180"))
PRINTERS = 50
KEEPALIVE = 3.0
NOISE_PUBLISHERS = 4


class Noise:
    """Other clients keeping the broker busy: QoS 1 publishers and a subscriber receiving them."""

    def __init__(self, broker: Broker, work: Path) -> None:
        self.broker, self.work, self.procs = broker, work, []

    def _tls(self, identity: str) -> list[str]:
        cert, key = self.broker.pki.client(identity)
        return ["-h", self.broker.host, "-p", str(self.broker.port), "--cafile", str(self.broker.ca_file),
                "--cert", str(cert), "--key", str(key), "-V", "mqttv5"]

    def __enter__(self) -> Noise:
        # Topics one level deeper than the vendor's meterbox/v1/+/+, so the test's subscriber
        # sees only the box's own messages.
        self.procs.append(spawn(["mosquitto_sub", *self._tls(INGEST_ID), "-q", "1", "-t", "meterbox/v1/+/noise/#"],
                                Path(os.devnull)))
        for i in range(NOISE_PUBLISHERS):
            who = f"noise-{i}"
            self.procs.append(spawn(
                ["mosquitto_pub", *self._tls(who), "-q", "1", "-t", f"meterbox/v1/{who}/noise/x",
                 "-m", "n" * 800, "--repeat", "100000000", "--repeat-delay", "0.004"],
                self.work / f"{who}.log"))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            terminate(proc)


@pytest.fixture()
def soak_broker(pki: Pki, tmp_path: Path) -> Iterator[Broker]:
    require("mosquitto", INSTALL_MOSQUITTO)
    require("mosquitto_pub", INSTALL_MOSQUITTO)
    # Connections, disconnections and errors, not every packet: millions of lines otherwise.
    with Broker(pki, work_dir=tmp_path / "broker", log_types=("error", "warning", "notice", "information")) as broker:
        yield broker


def reading(serial: str, n: int) -> tuple[Device, Reading]:
    """A colour printer's reading; values differ per reading, so a mixed-up payload shows."""
    base = 100_000 + n * 7
    meters = [Meter("impressions.total", base, "impressions"), Meter("impressions.black", base // 2, "impressions"),
              Meter("impressions.color", base - base // 2, "impressions"), Meter("sheets.total", base // 3, "sheets")]
    supplies = [Supply(f"toner.{c}", (n + i) % 101, "ok") for i, c in enumerate(("black", "cyan", "magenta", "yellow"))]
    return Device(serial, "Soak", "Colour 9000"), Reading(serial, time.time(), meters, supplies, clock="ntp")


class Box:
    """The daemon with no printers of its own, fed by this test's printers through its commit buffer."""

    def __init__(self, config: Path, clock: Path) -> None:
        clock.write_text('{"synced": true}')   # test machines rarely run NTP; readings wait for a synced clock
        self.cfg = load(config)
        self.parts = build(self.cfg, clock=FileClock(clock))
        self.daemon = Daemon(self.cfg, self.parts)
        self.produced = 0
        self.errors: list[UplinkError] = []
        said = self.daemon.uplink_state

        def state(err: UplinkError | None) -> None:
            if err is not None:
                self.errors.append(err)
            said(err)
        self.daemon.uplink_state = state  # type: ignore[method-assign]

    async def printer(self, serial: str, until: float) -> None:
        n = 0
        await asyncio.sleep(random.uniform(0, 1))
        while time.monotonic() < until:
            self.parts.commits.add(*reading(serial, n))
            self.produced += 1
            n += 1
            await asyncio.sleep(random.uniform(0.1, 0.9))  # about 2 readings/s per printer

    async def drained(self, timeout: float) -> None:
        """Every reading committed and acknowledged (the store's backlog is empty)."""
        deadline = time.monotonic() + timeout
        while self.parts.commits.readings or await self.parts.db.call(Store.backlog):
            assert time.monotonic() < deadline, "the backlog did not drain"
            await asyncio.sleep(0.2)


async def soak(box: Box, seconds: float) -> None:
    stop = asyncio.Event()
    daemon = asyncio.create_task(box.daemon.run(stop))
    until = time.monotonic() + seconds
    printers = [asyncio.create_task(box.printer(f"SOAK{i:03d}", until)) for i in range(PRINTERS)]
    await asyncio.gather(*printers)
    await box.drained(120)
    stop.set()
    await asyncio.wait_for(daemon, 10)


def test_uplink_stays_up_under_load_and_every_payload_arrives_intact_in_order(
        tmp_path: Path, soak_broker: Broker) -> None:
    config = BoxConfig(state_dir=tmp_path / "state", broker=soak_broker, keepalive=f"{KEEPALIVE:g}s",
                       uplink_extra='transport = "mqtt"').write(tmp_path / "meterbox.toml")
    box = Box(config, tmp_path / "clock.json")
    with Subscriber(soak_broker) as sub, Noise(soak_broker, tmp_path):
        started = time.monotonic()
        asyncio.run(soak(box, SOAK_SECONDS))
        minutes = (time.monotonic() - started) / 60
        store = Store.reader(box.cfg.state_dir / "meterbox.db")
        try:
            assert store.backlog() == 0
            sent = list(store.messages("reading"))
        finally:
            store.close()
        sub.wait_for(lambda ms: len({m.json["id"] for m in ms if m.box == BOX_ID and m.kind == "readings"})
                     >= len(sent), timeout=60)
    broker_log = soak_broker.log()
    ours = [line for line in broker_log.splitlines() if BOX_ID in line]
    connects = [line for line in ours if "New client connected" in line]
    # Every end of a connection of ours, and every TLS or protocol error of anyone's: only the
    # final clean DISCONNECT may be there.
    ends = [line for line in ours if re.search(r"disconnect|closed|exceeded|error", line, re.I)
            and "Received DISCONNECT" not in line]
    # ("unexpected eof": the broker's readiness probe and the noise clients, killed at the end; the
    # noise clients, mosquitto_pub/sub with "auto-" ids, may themselves trip on a loaded CI machine;
    # a connection of ours that failed before CONNECT, "<unknown>" to the broker, is in box.errors.)
    errors = [line for line in broker_log.splitlines()
              if re.search(r"OpenSSL Error|protocol error", line, re.I) and "unexpected eof" not in line
              and not re.search(r"Client (auto-|noise-|<unknown>)", line)]
    drops = ends[:-1] + errors if ends and ends[-1].endswith(f"Client {BOX_ID} disconnected.") else ends + errors
    print(f"soak: {len(sent)} readings in {minutes:.1f} min; CONNACKs {box.parts.uplink.connections if box.parts.uplink else 0}; "
          f"broker: {len(connects)} connects, {len(drops)} drops; errors {[str(e) for e in box.errors]}")
    assert box.parts.uplink is not None and box.parts.uplink.connections == 1 and len(connects) == 1, "\n".join(ours[-20:])
    assert drops == [] and box.errors == [], "\n".join(drops[:10])
    assert len(sent) == box.produced >= PRINTERS * SOAK_SECONDS  # about 2 a second per printer: all stored

    wire = {m.id: m.wire().encode() for m in sent}
    received = [m for m in sub.messages if m.box == BOX_ID and m.kind == "readings"]
    ids = [m.json["id"] for m in received]
    assert len(ids) == len(set(ids)) == len(wire)  # each exactly once: nothing resent, nothing lost
    assert all(m.payload == wire[m.json["id"]] for m in received)  # byte-identical
    order = {m.id: m.seq for m in sent}
    by_printer: dict[str, list[int]] = defaultdict(list)
    for m in received:
        by_printer[m.json["serial"]].append(order[m.json["id"]])
    assert len(by_printer) == PRINTERS
    assert all(seqs == sorted(seqs) for seqs in by_printer.values())
