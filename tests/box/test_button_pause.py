"""The button is the office's control over what leaves the building: the real daemon, built in-process
from its real parts, with gpiozero's mock pins, simulated printers and Mosquitto over mutual TLS."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from meterbox.box.daemon import Daemon, build
from meterbox.box.legend import Legend
from meterbox.box.panel import Panel
from meterbox.box.pins import PinMap
from meterbox.config import load
from meterbox.outbox.clock import FileClock
from meterbox.outbox.store import Store
from support.broker import Broker
from support.daemon import BOX_ID, BoxConfig, PrinterEntry
from support.loop import wait_until
from support.snmpsim import Simulator
from support.subscriber import Subscriber

PINS = PinMap.load()


class InProcessBox:
    """`meterbox run` in a thread of the test, with the panel on mock pins."""

    def __init__(self, config: Path, factory: MockFactory) -> None:
        self.cfg = load(config)
        self.factory = factory
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="box", daemon=True)
        self.daemon: Daemon | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        clock = self.cfg.state_dir.parent / "clock.json"
        clock.write_text('{"synced": true}')   # test machines rarely run NTP; readings wait for a synced clock
        parts = build(self.cfg, clock=FileClock(clock))
        self.daemon = Daemon(self.cfg, parts, on_ready=self.ready.set)
        legend = Legend.load()
        self.daemon.attach_panel(Panel(PINS, legend, self.loop, on_press=self.daemon.button_pressed,
                                       on_hold=self.daemon.button_held, pin_factory=self.factory), legend)
        await self.daemon.run(self.stop)

    def __enter__(self) -> InProcessBox:
        self.thread.start()
        assert self.ready.wait(20), "the daemon never got ready"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "the daemon did not stop"

    def press(self) -> None:
        pin = self.factory.pin(PINS.button)
        pin.drive_low()
        pin.drive_high()


@pytest.fixture
def own_broker(tmp_path: Path, pki: object) -> Iterator[Broker]:
    with Broker(pki, work_dir=tmp_path / "broker") as broker:  # type: ignore[arg-type]
        yield broker


def box_ids(state: Path) -> set[str]:
    store = Store.reader(state / "meterbox.db")
    try:
        return {m.id for m in store.messages("reading")}
    finally:
        store.close()


def test_a_press_closes_the_connection_at_once_and_the_backlog_arrives_on_the_next(
        tmp_path: Path, printers: Simulator, own_broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=own_broker, interval="300ms",
                    printers=[PrinterEntry(printers.address, "jetdirect_m130nw")])
    config = box.write(tmp_path / "meterbox.toml")
    factory = MockFactory()
    amber = factory.pin(PINS.amber)
    with Subscriber(own_broker) as sub, InProcessBox(config, factory) as running:
        assert wait_until(lambda: bool(sub.on("readings")), 20), "no reading before the press"
        connects = own_broker.log().count("New client connected from")
        pressed = time.monotonic()
        running.press()
        assert wait_until(lambda: f"Client {BOX_ID} disconnected" in own_broker.log(), 5), own_broker.log()[-2000:]
        gone = time.monotonic() - pressed
        assert gone < 1.5, f"the broker saw the box go {gone:.2f} s after the press"
        assert wait_until(lambda: amber.state == 1, 2), "the amber LED does not show the pause"
        # paused: polling and storing go on, and not one connection is attempted
        attempts = own_broker.log().count("New connection from")
        stored_before = len(box_ids(box.state_dir))
        assert wait_until(lambda: len(box_ids(box.state_dir)) >= stored_before + 5, 20)
        assert own_broker.log().count("New connection from") == attempts
        assert own_broker.log().count("New client connected from") == connects
        running.press()                                                    # resume
        stored = box_ids(box.state_dir)
        assert wait_until(lambda: stored <= {m.json["id"] for m in sub.on("readings")}, 30), "backlog not sent"
        assert wait_until(lambda: amber.state == 0, 2)
    ids = [m.json["id"] for m in sub.on("readings")]
    assert len(ids) - len(set(ids)) <= 20    # a resend keeps its id: at most one window sent twice
    assert (tmp_path / "state" / "paused").exists() is False
