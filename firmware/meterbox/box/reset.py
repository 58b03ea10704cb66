"""Factory reset: the button held while the box powers on, through a fast amber blink that can be cancelled.

Run at start-up, before the daemon takes the pins. What is cleared is passed in; the factory
identity (box id, key, claim code) is never among it, so the box can be claimed again.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gpiozero import Button

from meterbox.box.legend import Legend
from meterbox.box.panel import BOUNCE, PatternLED
from meterbox.box.pins import PinMap
from meterbox.errors import MeterboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResetPaths:
    """What a factory reset clears, and the identity folder it must never touch.

    Example::

        ResetPaths(site=[state / "site.toml"], certificate=[state / "client.crt", state / "client.key"],
                   store=[state / "meterbox.db"], identity=Path("/etc/meterbox/identity"))
    """

    site: tuple[Path, ...]
    certificate: tuple[Path, ...]
    store: tuple[Path, ...]
    identity: Path

    def __post_init__(self) -> None:
        for path in self.cleared():
            if _inside(path, self.identity) or _inside(self.identity, path):
                raise MeterboxError(f"factory reset would clear {path}, which holds the box's identity "
                                    f"{self.identity}; the identity must be kept: fix the paths passed in")

    def cleared(self) -> tuple[Path, ...]:
        return self.site + self.certificate + self.store


def held_at_start(pins: PinMap, legend: Legend, paths: ResetPaths, *, pin_factory: Any = None) -> bool:
    """If the button is down now: blink amber fast for the legend's reset time; held through, clear.

    Returns True if a reset was done. Letting go during the blink cancels (logged). The pins are
    released again before returning, for the panel to take.
    """
    button = Button(pins.button, pull_up=True, bounce_time=BOUNCE, pin_factory=pin_factory)
    amber = PatternLED(pins.amber, pin_factory=pin_factory)
    try:
        if not button.is_pressed:
            return False
        seconds = legend.button.reset_seconds
        log.warning("button held at start: factory reset in %g s unless it is let go (fast amber blink)",
                    seconds, extra={"METERBOX_EVENT": "reset-armed"})
        armed = legend.state("reset_armed")
        amber.play(legend.steps(armed))
        started = time.monotonic()
        if button.wait_for_release(timeout=seconds):
            log.info("factory reset cancelled: the button was let go after %.1f s; nothing was cleared",
                     time.monotonic() - started, extra={"METERBOX_EVENT": "reset-cancelled"})
            return False
        amber.on()
        clear(paths)
        return True
    finally:
        amber.off()
        amber.close()
        button.close()


def clear(paths: ResetPaths) -> list[Path]:
    """Remove the site configuration, the client certificate and the store; log what went."""
    removed = []
    for kind, group in (("site configuration", paths.site), ("client certificate", paths.certificate),
                        ("store", paths.store)):
        for path in _with_sqlite_sidecars(group) if kind == "store" else group:
            if _remove(path):
                removed.append(path)
                log.warning("factory reset: removed %s %s", kind, path, extra={"METERBOX_EVENT": "reset"})
    log.warning("factory reset done: %d files removed; the identity in %s is kept, the box waits to be "
                "claimed again", len(removed), paths.identity, extra={"METERBOX_EVENT": "reset"})
    return removed


def _with_sqlite_sidecars(paths: Iterable[Path]) -> list[Path]:
    out = []
    for path in paths:
        out += [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return out


def _remove(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())
