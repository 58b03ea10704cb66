"""systemd's side of the daemon: READY, STATUS, STOPPING, EXTEND_TIMEOUT and the watchdog (sd_notify).

Everything is a no-op when the process is not started by systemd (no NOTIFY_SOCKET) or
systemd-python is missing, so a laptop, a test and `meterbox run` in a shell behave alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable

log = logging.getLogger(__name__)

try:  # Debian's python3-systemd, or pip's systemd-python
    from systemd.daemon import notify as _sd_notify
except ImportError:  # pragma: no cover - depends on the machine
    _sd_notify = None


def watchdog_seconds(environ: dict[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog interval systemd asks of this process (WATCHDOG_USEC), as sd_watchdog_enabled(3)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None  # meant for another process (our parent, or a child)
    return int(usec) / 1_000_000


class Service:
    """Tells systemd how the daemon is doing.

    Example::

        service = Service.create()
        loop.create_task(service.watchdog())       # on the daemon's own event loop
        service.ready()                            # config loaded, store open, first polls scheduled
        service.status(status_line(12, 0, last_upload=time.time(), paused=False))
    """

    def __init__(self, notify: Callable[[str], object] | None) -> None:
        self._notify = notify
        self.interval = watchdog_seconds() if notify else None
        self.pings = 0

    @classmethod
    def create(cls) -> "Service":
        """Notifying when started by systemd (NOTIFY_SOCKET set), silent otherwise."""
        if not os.environ.get("NOTIFY_SOCKET"):
            return cls(None)
        if _sd_notify is None:
            log.warning("systemd waits for READY=1 but systemd-python is missing; install python3-systemd "
                        "(the service will be restarted as not started)")
            return cls(None)
        return cls(_sd_notify)

    @property
    def enabled(self) -> bool:
        return self._notify is not None

    def _send(self, text: str) -> None:
        if self._notify is not None:
            self._notify(text)

    def ready(self) -> None:
        """Config loaded, store open, first polls scheduled: systemd may start what waits for us."""
        self._send("READY=1")
        if self.enabled:
            log.info("ready%s", f"; watchdog every {self.interval / 2:g} s" if self.interval else "",
                     extra={"METERBOX_EVENT": "ready"})

    def status(self, text: str) -> None:
        """One line a person reads in `systemctl status meterbox`."""
        self._send("STATUS=" + text.replace("\n", " "))

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> None:
        """A long job (store recovery) is under way: give it SECONDS more before systemd gives up."""
        self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    async def watchdog(self) -> None:
        """Ping every half interval from the daemon's event loop: a stalled loop stops the pings.

        Returns at once when systemd asked for no watchdog; cancel it to stop.
        """
        if self.interval is None:
            return
        half = self.interval / 2
        log.debug("watchdog: pinging systemd every %.1f s", half)
        while True:
            self._send("WATCHDOG=1")
            self.pings += 1
            await asyncio.sleep(half)


def status_line(printers: int, waiting: int, last_upload: float | None, paused: bool = False,
                fault: str | None = None) -> str:
    """ "polling 12 printers, 0 waiting, last upload 10:02" (local time), for STATUS=."""
    words = [f"polling {printers} printer{'' if printers == 1 else 's'}", f"{waiting} waiting"]
    if paused:
        words.append("uploads paused")
    words.append("last upload " + (time.strftime("%H:%M", time.localtime(last_upload)) if last_upload else "never"))
    if fault:
        words.append(fault)
    return ", ".join(words)
