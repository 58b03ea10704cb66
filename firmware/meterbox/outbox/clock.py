"""The box's sense of time: wall clock, a boot-long monotonic clock, and whether time is synchronised.

The Pi has no real-time clock: until NTP has set the time, the wall clock may say 1970 or
whatever fake-hwclock saved at the last shutdown. A reading taken then is stored with the
monotonic time of the reading and the boot it belongs to; once the clock is synchronised in
the same boot, its true time is `now - (monotonic_now - monotonic_then)`.

Tests (and a bench) replace the system clock with a file named by METERBOX_CLOCK_FILE:
  {"synced": true, "offset": -86400, "boot": "test-boot-1"}
offset (seconds) is added to the real wall clock, boot replaces the kernel's boot id; the
file is read again whenever it changes, so a test can "sync" a running daemon.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

CLOCK_FILE_ENV = "METERBOX_CLOCK_FILE"
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")  # touched by systemd-timesyncd on sync
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised (STA_UNSYNC)


class _Timex(ctypes.Structure):
    """struct timex of adjtimex(2), as far as the fields we need (the tail is padding)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("rest", ctypes.c_long * 30)]


def kernel_synced() -> bool | None:
    """What the kernel says (what `timedatectl` shows as "System clock synchronized"); None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != _TIME_ERROR


class Clock:
    """The system clock. `monotonic()` counts from boot (CLOCK_BOOTTIME), the same in every process."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def boot(self) -> str:
        """This boot's id: a monotonic time means nothing in another boot."""
        try:
            return BOOT_ID.read_text().strip()
        except OSError:
            return "unknown-boot"

    def synced(self) -> bool:
        """True once NTP (timesyncd, chrony, ntpd) has set the time in this boot."""
        return TIMESYNCD_FLAG.exists() or bool(kernel_synced())

    def describe(self) -> str:
        if TIMESYNCD_FLAG.exists():
            return "synchronised (systemd-timesyncd)"
        synced = kernel_synced()
        return {True: "synchronised (kernel)", False: "NOT synchronised", None: "unknown"}[synced]


class FileClock(Clock):
    """A clock steered by a JSON file: the test seam (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._state: dict[str, object] = {}

    def _read(self) -> dict[str, object]:
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._state = json.loads(self.path.read_text() or "{}")
                self._stamp = (st.st_mtime_ns, st.st_size)
        except (OSError, ValueError) as err:
            log.debug("clock file %s: %s", self.path, err)
        return self._state

    def now(self) -> float:
        return time.time() + float(self._read().get("offset", 0.0))  # type: ignore[arg-type]

    def boot(self) -> str:
        return str(self._read().get("boot") or super().boot())

    def synced(self) -> bool:
        return bool(self._read().get("synced", False))

    def describe(self) -> str:
        return ("synchronised" if self.synced() else "NOT synchronised") + f" (test clock {self.path})"


def system_clock() -> Clock:
    """The clock the daemon uses: the system's, unless METERBOX_CLOCK_FILE names a test clock."""
    path = os.environ.get(CLOCK_FILE_ENV)
    return FileClock(Path(path)) if path else Clock()
