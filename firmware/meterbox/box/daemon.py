"""The daemon: wiring only. Parts are built outside (`build`) and passed in, each with one job.

  printers (Fleet: pollers, health, discovery)  --readings-->  CommitBuffer  --commit-->  store thread
  Pump: outbox rows -> Uplink (the one owner of the MQTT socket); PUBACKs -> CommitBuffer
  Timekeeper: dates trusted, held or corrected;  Heartbeat: the box's health on the status topic
  PauseSwitch: the one owner of pause (button, CLI, page)

No part reaches into another's attributes; they talk through the callables given here.
Every SQLite call runs on the store's own thread, so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from meterbox.background import in_thread
from meterbox.box import live
from meterbox.box.enroll import Enrollment, Site
from meterbox.box.faults import Facts, FaultWatch
from meterbox.box.legend import Legend
from meterbox.box.pause import PauseSwitch
from meterbox.box.state import BoxState
from meterbox.config import Config, EnrollConfig, UplinkConfig
from meterbox.errors import MeterboxError, StoreError, UplinkError
from meterbox.logs import Once
from meterbox.outbox.clock import Clock, system_clock
from meterbox.outbox.commits import CommitBuffer
from meterbox.outbox.history import StoreHistory
from meterbox.outbox.opening import open_store
from meterbox.outbox.store import Store
from meterbox.outbox.timekeeper import Timekeeper, human
from meterbox.outbox.worker import StoreWorker
from meterbox.printers.fleet import Fleet
from meterbox.printers.poller import Context
from meterbox.printers.reading import Reading
from meterbox.printers.snmp import SnmpClient
from meterbox.printers.validate import Validator
from meterbox.uplink.heartbeat import Heartbeat
from meterbox.uplink.mqtt import Uplink
from meterbox.uplink.pump import Pump

if TYPE_CHECKING:
    from meterbox.box.panel import Panel

log = logging.getLogger(__name__)

STOP_BUDGET = 1.5     # seconds a stop may take in all (systemd must never have to kill us)
LIVE_INTERVAL = 1.0   # the LEDs are set at least this often (at once on a change)
LIVE_REFRESH = 5.0    # the counts from the store (backlog, last upload) are refreshed this often
DEFAULT_IDENTITY = Path("/etc/meterbox/identity")


@dataclass
class Parts:
    """Everything the daemon runs, built by `build` (or by a test, from real parts).

    The uplink parts exist once the box knows its broker: from [uplink] in the config, from
    an earlier enrollment, or later, when the vendor answers the enrollment (attach_uplink).
    """

    db: StoreWorker
    pause: PauseSwitch
    timekeeper: Timekeeper
    commits: CommitBuffer
    validator: Validator
    snmp: SnmpClient
    fleet: Fleet
    hooks: Hooks
    choice: EnrollConfig                  # which printers the office lets the box report
    enrollment: Enrollment | None = None
    uplink: Uplink | None = None
    pump: Pump | None = None
    heartbeat: Heartbeat | None = None


def build(cfg: Config, clock: Clock | None = None) -> Parts:
    """The parts for CFG, wired to each other through small callables."""
    db = StoreWorker(open_store(cfg.state_dir / "meterbox.db"))
    timekeeper = Timekeeper(clock or system_clock(), db)
    hooks = Hooks()
    pause = PauseSwitch(cfg.state_dir, cfg.runtime_dir)
    validator = Validator()
    commits = CommitBuffer(db, cfg.box_id, max_bytes=cfg.store.max_bytes, ack_batch=cfg.uplink.in_flight // 2,
                           on_stored=hooks.stored, in_flight=hooks.in_flight, states=validator)
    snmp = SnmpClient()
    ctx = Context(snmp=snmp, validator=validator, timekeeper=timekeeper, sink=commits, history=StoreHistory(db),
                  enrolled=hooks.enrolled, interval=cfg.poll.interval, on_meter_events=hooks.meter_events)
    parts = Parts(db, pause, timekeeper, commits, validator, snmp, Fleet(cfg, ctx), hooks, cfg.enroll)
    hooks.parts = parts
    if cfg.identity is not None and not cfg.uplink.host:
        parts.enrollment = Enrollment(cfg.identity, cfg.state_dir, ca_file=cfg.vendor_ca_file,
                                      paused=lambda: pause.paused, on_site=hooks.site)
        if parts.enrollment.site:
            apply_site(cfg, parts, parts.enrollment.site)
    elif cfg.uplink.host:
        attach_uplink(cfg, parts, cfg.uplink)
    return parts


def attach_uplink(cfg: Config, parts: Parts, uplink_cfg: UplinkConfig) -> None:
    """The uplink, its pump and the heartbeat, for the broker UPLINK_CFG names."""
    hooks = parts.hooks
    parts.uplink = Uplink(uplink_cfg, cfg.box_id, on_ack=hooks.wake, on_state=hooks.uplink_state)
    parts.pump = Pump(parts.uplink, parts.db, parts.commits, parts.timekeeper, enrolled=hooks.enrolled)
    parts.heartbeat = Heartbeat(parts.db, cfg.box_id, uplink_cfg.heartbeat, synced=parts.timekeeper.synced,
                                printers=parts.fleet.counts, wake=hooks.wake)


def apply_site(cfg: Config, parts: Parts, site: Site) -> None:
    """The vendor's site configuration, except what the local config sets itself."""
    if site.enroll is not None and "enroll" not in cfg.local:
        parts.choice = site.enroll
    if site.poll_interval and "poll.interval" not in cfg.local:
        parts.fleet.ctx.interval = site.poll_interval
    if parts.uplink is None:
        attach_uplink(cfg, parts, site.uplink)


class Hooks:
    """The callables parts were given before the daemon existed; they act once it does."""

    parts: Parts | None = None
    daemon: Daemon | None = None

    def wake(self) -> None:
        if self.parts and self.parts.pump:
            self.parts.pump.wake()

    def stored(self, readings: list[Reading]) -> None:
        if self.parts:
            self.parts.timekeeper.stored(readings)
        self.wake()

    def in_flight(self) -> set[str]:
        return self.parts.uplink.flying() if self.parts and self.parts.uplink else set()

    def enrolled(self, serial: str) -> bool:
        return bool(self.parts and self.parts.choice.allows(serial))

    def uplink_state(self, err: UplinkError | None) -> None:
        if self.daemon:
            self.daemon.uplink_state(err)
        if err is None:
            self.wake()  # connected: the backlog may go now

    def site(self, site: Site) -> None:
        if self.daemon:
            self.daemon.site_arrived(site)

    async def meter_events(self) -> None:
        if self.daemon:
            await self.daemon.note_meter_events()


class Daemon:
    """Everything `meterbox run` does: `await Daemon(cfg, build(cfg)).run(stop)`."""

    def __init__(self, cfg: Config, parts: Parts, *, on_ready: Callable[[], None] = lambda: None,
                 on_status: Callable[[str], None] = lambda text: None) -> None:
        self.cfg = cfg
        self.parts = parts
        self.on_ready = on_ready          # systemd READY=1
        self.on_status = on_status        # systemd STATUS=
        self.uplink_error: str | None = None
        self._held_text: str | None = None
        self._live: dict[str, Any] = {}
        self._written: dict[str, Any] = {}
        self._live_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._uplink_started = False
        self._uplink_code: str | None = None     # MeterboxError.code of the uplink's current error
        self.faults = FaultWatch()
        self.panel: Panel | None = None           # attached by `meterbox run` where the board has GPIO
        self.legend: Legend | None = None
        parts.hooks.daemon = self

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and upload until STOP is set; then stop within STOP_BUDGET."""
        p = self.parts
        self._held_text = await p.db.call(Store.state, "meters_held")
        self.uplink_error = await p.db.call(Store.state, "last_error")
        log.info("meterbox %s polling %d printers every %s; %d readings waiting to be sent",
                 self.cfg.box_id, len(p.fleet.pollers), human(self.cfg.poll.interval),
                 await p.db.call(Store.backlog))
        p.timekeeper.warn_if_unsynced()
        await p.timekeeper.settle(force=True)
        # `meterbox status` says "running" from the first moment, not after the first poll's
        # commit has let the live loop at the store.
        await self._write_live_now()
        tasks = [asyncio.create_task(p.fleet.run(), name="printers"),
                 asyncio.create_task(p.commits.run(), name="commits"),
                 asyncio.create_task(p.pause.watch(self._pause_changed), name="pause"),
                 asyncio.create_task(self._live_loop(), name="live")]
        self._tasks = tasks
        if p.pause.paused:
            log.info("uploads are paused (%s); `meterbox resume` turns them back on", p.pause.since() or "earlier")
        if p.enrollment:
            if not p.enrollment.claimed:
                log.info("box %s is not claimed yet: it asks the vendor every few seconds; scan the QR code "
                         "on its label with a phone to claim it", self.cfg.box_id)
            tasks.append(asyncio.create_task(p.enrollment.run(), name="enrollment"))
        self._start_uplink()
        self.on_ready()
        try:
            await stop.wait()
        finally:
            await self._stop(tasks)

    def _start_uplink(self) -> None:
        """Run the uplink parts (at start, or when enrollment has just given the broker)."""
        p = self.parts
        if not (p.uplink and p.pump and p.heartbeat) or self._uplink_started:
            return
        self._uplink_started = True
        if p.pause.paused:
            p.uplink.pause()
        self._tasks += [asyncio.create_task(p.uplink.run(), name="uplink"),
                        asyncio.create_task(p.pump.run(), name="pump"),
                        asyncio.create_task(p.heartbeat.run(), name="heartbeat")]

    def site_arrived(self, site: Site) -> None:
        """Enrollment wrote a site configuration (first claim, or a renewed certificate)."""
        apply_site(self.cfg, self.parts, site)
        self._start_uplink()
        self._live_dirty.set()

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        """Polls end, the uplink says goodbye (no new window), what waits is committed; all within budget."""
        p = self.parts
        started = time.monotonic()

        def left() -> float:
            return max(STOP_BUDGET - (time.monotonic() - started), 0.05)

        tasks[0].cancel()                               # the printers first: nothing new comes in
        p.commits.stopping.set()                        # a compaction running now ends after its transaction
        if p.pump and p.uplink:
            p.pump.stopping = True
            try:
                await asyncio.wait_for(p.uplink.close(timeout=min(0.5, left())), left())
            except asyncio.TimeoutError:
                pass
            p.commits.acked(p.uplink.take_acked())
        for task in tasks[1:]:
            task.cancel()
        await asyncio.wait(tasks, timeout=left())
        try:
            await asyncio.wait_for(p.commits.flush(), left())
        except asyncio.TimeoutError:
            log.warning("stop: the store did not take the last %d readings in time (it was busy, e.g. compacting); "
                        "they are lost, as in a power cut at this moment",
                        len(p.commits.readings) + p.commits.committing)
        p.snmp.close()
        if self.panel:
            self.panel.close()
        p.db.close(timeout=left())
        log.info("meterbox stopped in %.1f s; %d readings stored since start", time.monotonic() - started,
                 p.commits.stored)

    def _pause_changed(self, paused: bool) -> None:
        """The button, the CLI or the page changed the pause switch."""
        p = self.parts
        self._live_dirty.set()                          # the amber LED follows at once
        if p.enrollment and not paused:
            p.enrollment.resumed()
        if p.uplink is None:
            return
        if paused:
            p.uplink.pause()
            log.info("uploads paused: no connection to the vendor until resumed",
                     extra={"METERBOX_EVENT": "paused"})
        else:
            p.uplink.resume()
            if p.pump:
                p.pump.wake()
            log.info("uploads resumed", extra={"METERBOX_EVENT": "resumed"})
        self._live_dirty.set()

    # --- the panel (button and LEDs) ---------------------------------------------------
    def attach_panel(self, panel: Panel | None, legend: Legend) -> None:
        """The button and LEDs (None on a machine without GPIO: the box runs without them)."""
        self.panel, self.legend = panel, legend
        self._live_dirty.set()

    def button_pressed(self) -> None:
        """Short press: pause or resume, the same switch as `meterbox pause` / `resume`."""
        try:
            text = self.parts.pause.toggle("the button")
        except MeterboxError as err:
            log.error("button: %s", err)
            return
        log.info("button: %s", text, extra={"METERBOX_EVENT": "button-press"})
        self._pause_changed(self.parts.pause.paused)

    def button_held(self) -> None:
        """Held 5 s: print the setup page on a printer the box found (off the loop: it blocks)."""
        log.info("button held: printing the setup page", extra={"METERBOX_EVENT": "button-hold"})
        asyncio.get_running_loop().create_task(self.print_setup_page())

    async def print_setup_page(self) -> None:
        from meterbox.box.setup_page.command import printer_hosts
        from meterbox.box.setup_page.info import from_config
        from meterbox.box.setup_page.render import render
        from meterbox.box.setup_page.send import send_to_first

        legend = self.legend or Legend.load()
        identity = self.cfg.identity or DEFAULT_IDENTITY
        state = await self.box_state()
        info, hosts = await self.parts.db.call(
            lambda store: (from_config(self.cfg, store, identity_dir=identity, state=state,
                                       enrolled=self.parts.hooks.enrolled), printer_hosts(store)))
        try:
            sent = await in_thread(send_to_first, hosts, lambda fmt: render(info, legend, fmt), name="setup-page")
        except MeterboxError as err:
            self.faults.print_failed_at = time.monotonic()
            log.warning("setup page not printed: %s", err, extra={"METERBOX_EVENT": "setup-page-failed"})
        else:
            log.info("setup page: %s", sent, extra={"METERBOX_EVENT": "setup-page"})
        self._live_dirty.set()

    async def box_state(self) -> BoxState:
        """What the LEDs show: paused, unclaimed, the fault, a backlog being sent, uploads fine."""
        p = self.parts
        status = self._live or await self._live_status()
        fault = self.faults.fault(Facts(
            store_error=p.commits.error is not None or p.db.store.fallback is not None,
            uplink_code=self._uplink_code or (p.enrollment.error_code if p.enrollment else None),
            printers=len(p.fleet.pollers), polled=p.fleet.polled(), answering=status.get("answering", 0),
            reported=status.get("reported", 0), swept=p.fleet.swept, clock_synced=p.timekeeper.synced()))
        backlog = status.get("backlog") or 0
        connected = bool(p.uplink and p.uplink.connected)
        return BoxState(paused=p.pause.paused, unclaimed=bool(p.enrollment and not p.enrollment.claimed),
                        fault=fault, sending_backlog=connected and backlog > self.cfg.uplink.in_flight,
                        uploads_ok=connected and bool(status.get("last_upload")))

    def uplink_state(self, err: UplinkError | None) -> None:
        """The uplink's current error (None once connected): kept for `meterbox status`."""
        text = str(err) if err else None
        self._uplink_code = err.code if err else None
        if text != self.uplink_error:
            self.uplink_error = text
            asyncio.get_running_loop().create_task(self._save_state("last_error", text))
        self._live_dirty.set()

    async def note_meter_events(self) -> None:
        """Keep what is held back or missing where `meterbox status` shows it (written on change only)."""
        held = [{"serial": e.serial, "meter": e.meter, "kind": e.kind, "reason": e.reason}
                for e in self.parts.validator.open_events()]
        text = json.dumps(held, ensure_ascii=False) if held else None
        if text != self._held_text:  # compared in memory: no SQLite per poll
            self._held_text = text
            self._live_dirty.set()      # the live status carries them too: a store in memory is not the card's
            await self._save_state("meters_held", text)

    async def _save_state(self, key: str, value: str | None) -> None:
        try:
            await self.parts.db.call(Store.set_state, key, value)
        except StoreError as err:
            log.debug("state %s not saved: %s", key, err)

    async def _live_loop(self) -> None:
        """The live status file and systemd's STATUS= line, rewritten when they change."""
        once = Once(log)
        refreshed = 0.0
        while True:
            dirty = self._live_dirty.is_set()
            self._live_dirty.clear()
            try:
                # The LEDs first, from what is known now: a press shows at once, even while the
                # store is busy (a compaction) and the counts below wait for it.
                state = await self.box_state()
                if self.panel:
                    self.panel.show(state)
                if dirty or time.monotonic() - refreshed >= LIVE_REFRESH or not self._live:
                    refreshed = time.monotonic()
                    await self._refresh_live(state)
                once.clear("live")
            except Exception:  # the LEDs and status must not freeze for good over one surprise
                if once.say("live", "live status: unexpected error; trying again", logging.ERROR):
                    log.exception("live status: unexpected error")
            try:
                await asyncio.wait_for(self._live_dirty.wait(), LIVE_INTERVAL)
            except asyncio.TimeoutError:
                pass

    async def _write_live_now(self) -> None:
        try:
            self._live = await self._live_status()     # the store is asked once, not again for the LEDs
            await self._refresh_live(await self.box_state(), dict(self._live))
        except Exception:  # the live loop tries again, and says so
            log.debug("first live status not written", exc_info=True)

    async def _refresh_live(self, state: BoxState, status: dict[str, Any] | None = None) -> None:
        """The counts from the store, the live status file and STATUS=, when they changed."""
        status = status if status is not None else await self._live_status()
        status["fault"] = state.fault
        self._live = status
        if status != self._written:
            self._written = status
            live.write(self.cfg.runtime_dir, status)
            self.on_status(live.sentence(status))

    async def _live_status(self) -> dict[str, Any]:
        p = self.parts
        seen, reported = p.fleet.counts()
        try:
            backlog = await p.db.call(Store.backlog)
            last_upload = await p.db.call(Store.last_upload)
        except StoreError:
            backlog, last_upload = None, None
        return {"box": self.cfg.box_id, "printers": len(p.fleet.pollers), "answering": seen, "reported": reported,
                "claimed": p.enrollment.claimed if p.enrollment else None,
                "paused": p.pause.paused, "connected": bool(p.uplink and p.uplink.connected),
                "uplink": bool(p.uplink), "uplink_error": self.uplink_error,
                "store_error": p.commits.error or p.db.store.fallback,
                "store_in_memory": p.db.store.fallback is not None,
                "meters_held": json.loads(self._held_text or "[]"),
                "in_memory": len(p.commits.readings), "backlog": backlog, "last_upload": last_upload,
                "clock": "synchronised" if p.timekeeper.synced() else "not synchronised"}
