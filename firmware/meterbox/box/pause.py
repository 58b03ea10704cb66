"""Pause: the office's switch for all communication with the vendor. One owner, kept across reboots.

The state is a small file of its own beside the store (`<state_dir>/paused`), not a row
in the store: it must hold when the store cannot be opened, and it is read before any
connection is made. When the state directory cannot be written (a worn SD card turns
read-only), pausing still works until the next restart through the runtime directory
(`<runtime_dir>/paused`, a tmpfs). When the state cannot be read at all, the box is
paused: silence is the safe side of the promise to the office.

The button, `meterbox pause` / `resume` and the office's page all go through here; the
daemon watches the files, so a command takes effect within a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Callable

from meterbox.errors import MeterboxError
from meterbox.printers.reading import utc_iso

log = logging.getLogger(__name__)

FILE = "paused"
WATCH_INTERVAL = 0.5   # seconds between two looks at the files: pause takes effect within a second


class PauseError(MeterboxError):
    """The pause switch could not be changed."""

    code = "pause"


class PauseSwitch:
    """Reads and sets the pause state; `watch` tells the daemon when it changes.

    Files: `<state_dir>/paused` (kept across reboots) and, only when the state directory
    cannot be written, `<runtime_dir>/paused` or `<runtime_dir>/resumed` for this boot,
    which then take precedence.
    """

    def __init__(self, state_dir: Path, runtime_dir: Path) -> None:
        self.persistent = state_dir / FILE
        self.runtime_paused = runtime_dir / FILE
        self.runtime_resumed = runtime_dir / "resumed"
        self.paused = self.read()

    def read(self) -> bool:
        """Paused or not; paused too when the state cannot be read (paused-safe)."""
        for path, paused in ((self.runtime_paused, True), (self.runtime_resumed, False), (self.persistent, True)):
            try:
                path.stat()
                return paused
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as err:
                log.warning("cannot read the pause state %s (%s); uploads stay paused until it can be read",
                            path, err.strerror or err)
                return True
        return False

    def since(self) -> str | None:
        """What the pause file says (when and by whom), for status lines."""
        for path in (self.runtime_paused, self.persistent):
            try:
                return path.read_text(encoding="utf-8").strip() or "paused"
            except OSError:
                continue
        return None

    def set(self, paused: bool, by: str) -> str:
        """Pause or resume; returns one sentence for the person who asked. Raises PauseError if impossible."""
        return self._pause(by) if paused else self._resume(by)

    def toggle(self, by: str) -> str:
        return self.set(not self.read(), by)

    def _pause(self, by: str) -> str:
        text = f"paused at {utc_iso(time.time())} by {by}\n"
        _remove(self.runtime_resumed)
        try:
            _write(self.persistent, text)
            self.paused = True
            return "uploads paused: the box will not contact the vendor until resumed"
        except OSError as err:
            first = err
        try:
            _write(self.runtime_paused, text)
        except OSError as err:
            raise PauseError(f"cannot pause: neither {self.persistent} ({first.strerror}) nor {self.runtime_paused} "
                             f"({err.strerror}) can be written; unplug the box's network cable to stop "
                             "all communication, and run `meterbox doctor`") from err
        self.paused = True
        return (f"uploads paused until the box restarts: {self.persistent.parent} cannot be written "
                f"({first.strerror}), so the pause cannot be kept across a restart; run `meterbox doctor`")

    def _resume(self, by: str) -> str:
        _remove(self.runtime_paused)
        try:
            self.persistent.unlink(missing_ok=True)
            _remove(self.runtime_resumed)
            self.paused = False
            return "uploads resumed"
        except OSError as err:
            first = err
        try:
            _write(self.runtime_resumed, f"resumed at {utc_iso(time.time())} by {by}\n")
        except OSError as err:
            raise PauseError(f"cannot resume: neither {self.persistent} ({first.strerror}) can be removed nor "
                             f"{self.runtime_resumed} ({err.strerror}) written; the box stays paused; "
                             "run `meterbox doctor`") from err
        self.paused = False
        return (f"uploads resumed until the box restarts: {self.persistent} cannot be removed "
                f"({first.strerror}), so after a restart the box is paused again; run `meterbox doctor`")

    async def watch(self, on_change: Callable[[bool], None]) -> None:
        """Call ON_CHANGE(paused) whenever the state changes (CLI, page, button)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            self.changed(on_change)

    def changed(self, on_change: Callable[[bool], None]) -> bool:
        """Look now; True (after calling ON_CHANGE) if the state differs from the last look."""
        now = self.read()
        if now == self.paused:
            return False
        self.paused = now
        on_change(now)
        return True


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _write(path: Path, text: str) -> None:
    """Write PATH durably (a pause must survive a power cut right after the press)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)   # the rename itself, durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
