"""Which fault the box shows now: one class from hw/legend.toml, the most fundamental first.

A box without network cannot reach the vendor, and a store that cannot be written makes
everything after it moot: the red LED and `meterbox status` name the cause a person can
fix first, not its consequences. The classes and their blink codes, sentences and what to
do live in hw/legend.toml; this module only decides which one applies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meterbox.printers import netif

CLOCK_GRACE = 3600.0      # the clock may take this long to synchronise before it is a fault
NETWORK_CHECK = 5.0       # seconds between two looks at the interfaces
FAILED_PRINT = 60.0       # a setup page that found no printer shows "no printers" this long


@dataclass(frozen=True)
class Facts:
    """What the daemon knows now, as plain values."""

    store_error: bool
    uplink_code: str | None       # code of the uplink's (or enrollment's) current error: "tls", "uplink", …
    printers: int                 # pollers
    polled: int                   # pollers that have been polled at least once
    answering: int
    reported: int
    swept: bool                   # discovery has finished a sweep (or is off)
    clock_synced: bool


class FaultWatch:
    """Decides the fault class; keeps the little memory that needs (since when unsynced, network)."""

    def __init__(self) -> None:
        self._unsynced_since: float | None = None
        self._network = (0.0, True)
        self.print_failed_at: float | None = None

    def network_ok(self) -> bool:
        """An interface that is up, not loopback, with an IPv4 address (looked at every few seconds)."""
        checked, ok = self._network
        if time.monotonic() - checked >= NETWORK_CHECK:
            try:
                ok = any(i.up and not i.loopback and i.addresses for i in netif.interfaces())
            except OSError:
                ok = True   # cannot tell: no false alarm
            self._network = (time.monotonic(), ok)
        return ok

    def fault(self, facts: Facts) -> str | None:
        """The fault class name (legend.toml), or None."""
        now = time.monotonic()
        if facts.clock_synced:
            self._unsynced_since = None
        elif self._unsynced_since is None:
            self._unsynced_since = now
        if not self.network_ok():
            return "network"
        if facts.store_error:
            return "storage"
        if facts.uplink_code in ("tls", "revoked"):
            return "tls"
        if facts.uplink_code is not None:
            return "vendor_unreachable"
        if self._no_printers(facts) or (self.print_failed_at and now - self.print_failed_at < FAILED_PRINT):
            return "no_printers"
        if self._unsynced_since is not None and now - self._unsynced_since > CLOCK_GRACE:
            return "clock"
        return None

    @staticmethod
    def _no_printers(facts: Facts) -> bool:
        if facts.printers == 0:
            return facts.swept
        if facts.polled < facts.printers:
            return False            # not all asked yet: no verdict
        return facts.answering == 0 or facts.reported == 0
