"""sd_notify through systemd-python to a NOTIFY_SOCKET the test owns (STYLE.md 10)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterbox.box import journal
from meterbox.box.service import Service, status_line, watchdog_seconds
from support import require
from support.daemon import BoxConfig, PrinterEntry, run_cli
from support.notify import NotifySocket
from support.process import log_tail, spawn, terminate
from support.snmpsim import Simulator

INSTALL_SYSTEMD_PYTHON = "apt-get install libsystemd-dev pkg-config, then pip install -e '.[systemd]'"
WATCHDOG = 0.4  # seconds: systemd's WatchdogSec in these tests; pings come every 0.2 s


def systemd_python() -> None:
    try:
        import systemd.daemon  # noqa: F401
    except ImportError:
        require(False, INSTALL_SYSTEMD_PYTHON)


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    systemd_python()
    with NotifySocket(tmp_path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
        monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG * 1e6)))
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_ready_status_and_watchdog_from_the_loop(notify: NotifySocket) -> None:
    """WATCHDOG=1 every half interval from the event loop; a blocked loop sends none."""
    service = Service.create()
    assert service.enabled and service.interval == pytest.approx(WATCHDOG)
    block = 1.0

    async def main() -> tuple[float, float]:
        pinging = asyncio.create_task(service.watchdog())
        service.ready()
        service.status(status_line(12, 0, time.time()))
        await asyncio.to_thread(notify.wait_for, "WATCHDOG=1", 5)
        started = time.monotonic()
        threading.Event().wait(block)  # the loop is stuck in a blocking call
        ended = time.monotonic()
        await asyncio.to_thread(notify.wait_for, "WATCHDOG=1", len(notify.lines("WATCHDOG=1")) + 3)
        service.stopping()
        pinging.cancel()
        return started, ended

    started, ended = asyncio.run(main())
    assert notify.wait_for("READY=1")
    status = notify.wait_for("STATUS=")[0][1]
    assert status.startswith("STATUS=polling 12 printers, 0 waiting, last upload ")
    pings = [t for t, _ in notify.lines("WATCHDOG=1")]
    before = [t for t in pings if t < started]
    assert statistics.median(gaps(before)) == pytest.approx(WATCHDOG / 2, abs=0.05)
    assert not [t for t in pings if started + 0.1 < t < ended], "pinged while the loop was blocked"
    assert [t for t in pings if t > ended], "pings did not resume"
    assert notify.wait_for("STOPPING=1")


def test_extend_timeout(notify: NotifySocket) -> None:
    Service.create().extend_timeout(90)
    assert notify.wait_for("EXTEND_TIMEOUT_USEC=")[0][1] == "EXTEND_TIMEOUT_USEC=90000000"


def test_not_under_systemd_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service = Service.create()
    assert not service.enabled
    service.ready()
    service.status("x")
    asyncio.run(service.watchdog())  # returns at once: no watchdog asked for


def test_watchdog_for_another_process_is_not_ours() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, pid=99) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "99"}, pid=99) == 4.0
    assert watchdog_seconds({}) is None


def test_daemon_process_notifies_and_a_frozen_one_stops_pinging(
        notify: NotifySocket, printers: Simulator, tmp_path: Path) -> None:
    """`meterbox run` as systemd starts it: READY once polling, STATUS, pings stop under SIGSTOP."""
    config = BoxConfig(state_dir=tmp_path / "state",
                       printers=[PrinterEntry(printers.address, "jetdirect_m130nw")]).write(tmp_path / "m.toml")
    log_path = tmp_path / "meterbox.log"
    proc = spawn([sys.executable, "-m", "meterbox", "run", "--config", str(config)], log_path,
                 env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(int(WATCHDOG * 1e6)),
                      "JOURNAL_STREAM": "", "INVOCATION_ID": ""})
    try:
        try:
            notify.wait_for("READY=1", timeout=20)
            os.kill(proc.pid, signal.SIGSTOP)   # `systemctl start` has returned; the office asks at once
            try:
                said = run_cli("status", "--config", str(config))
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            resumed = time.monotonic()
            assert said.startswith(f"daemon: running (pid {proc.pid})"), said
            status = notify.wait_for("STATUS=")[0][1]
            notify.wait_for("WATCHDOG=1", count=len(notify.lines("WATCHDOG=1")) + 6)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{log_tail(log_path, 30)}") from None
        assert status == "STATUS=polling 1 printer, 0 waiting, last upload never"
        pings = [t for t, _ in notify.lines("WATCHDOG=1") if t > resumed]
        assert statistics.median(gaps(pings)) == pytest.approx(WATCHDOG / 2, abs=0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        threading.Event().wait(1.0)  # a second of a frozen daemon
        os.kill(proc.pid, signal.SIGCONT)
        thawed = time.monotonic()
        # (a ping sent just before the freeze may be received a little later on a busy machine)
        assert not [t for t, _ in notify.lines("WATCHDOG=1") if frozen + 0.1 < t < thawed]
        terminate(proc)
        assert notify.wait_for("STOPPING=1")
    finally:
        terminate(proc)


def test_logs_go_to_stderr_readable_when_not_under_systemd() -> None:
    out = io.StringIO()
    assert journal.setup_logging("info", stream=out, journal=False) == "stderr"
    logging.getLogger("meterbox.test").warning("printer %s unreachable", "KNB015751",
                                               extra={"METERBOX_SERIAL": "KNB015751"})
    line = out.getvalue().strip()
    assert line.endswith("WARNING meterbox.test: printer KNB015751 unreachable"), line
    assert journal.under_systemd({"INVOCATION_ID": "abc"}) and not journal.under_systemd({})


def test_logs_go_to_the_journal_under_systemd() -> None:
    systemd_python()
    from systemd.journal import JournalHandler

    assert journal.setup_logging("info", journal=True) == "journal"
    assert isinstance(logging.getLogger().handlers[0], JournalHandler)
    journal.setup_logging("info", journal=False)
