"""What a discovery sweep found: printers by address, one entry per serial, and the sweep's account.

A printer with two network ports answers at two addresses with one serial: it is one
printer, read at its lowest address.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meterbox.config import Credential
from meterbox.printers.poll import PollResult
from meterbox.printers.reading import Device

log = logging.getLogger("meterbox.printers.discovery")   # one name in the journal for the whole sweep

_said: set[str] = set()


def say_once(message: str, level: int = logging.INFO) -> None:
    """Log a fact about the network once per process at LEVEL; later sweeps say it only at DEBUG."""
    log.log(logging.DEBUG if message in _said else level, "%s", message)
    _said.add(message)


def address_text(host: str, port: int) -> str:
    """How an address is shown: "192.0.2.10", "192.0.2.10:1161", "[2001:db8::10]:1161"."""
    if port == 161:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Found:
    """A printer a sweep found: where it answered, with which credential, and who it is."""

    host: str
    port: int
    credential: Credential
    result: PollResult
    via: str                                  # "subnet eth0", "range …", "host", "mDNS <name>"
    also_at: list[str] = field(default_factory=list)

    @property
    def device(self) -> Device:
        return self.result.device

    @property
    def serial(self) -> str | None:
        return self.device.serial or None

    @property
    def address(self) -> str:
        return address_text(self.host, self.port)

    def row(self) -> dict[str, Any]:
        """One line of `meterbox discover`: never the community or key, only which kind worked."""
        return {"address": self.address, "manufacturer": self.device.manufacturer,
                "model": self.device.model, "serial": self.serial,
                "credential": self.credential.describe()}


@dataclass
class SweepResult:
    """What one sweep saw, for the CLI table, the daemon and the benchmark."""

    printers: list[Found]            # one per serial, by address; those without a serial last
    addresses: int = 0               # addresses probed
    answered: int = 0                # answered SNMP with some credential
    others: list[str] = field(default_factory=list)     # answered, but are not printers
    own: list[str] = field(default_factory=list)        # the box's own addresses, in a range: not probed
    problems: list[str] = field(default_factory=list)   # one sentence each: what, where, what to do
    packets: int = 0                 # probe requests sent (identification polls not counted)
    seconds: float = 0.0


def _order(found: Found) -> tuple[int, int, int]:
    address = ipaddress.ip_address(found.host)
    return address.version, int(address), found.port


def merge(found: Iterable[Found]) -> list[Found]:
    """One entry per serial, at its lowest address; the other addresses go to also_at."""
    by_serial: dict[str, Found] = {}
    anonymous: list[Found] = []
    for item in sorted(found, key=_order):
        if item.serial is None:
            anonymous.append(item)
        elif item.serial in by_serial:
            first = by_serial[item.serial]
            first.also_at.append(item.address)
            say_once(f"printer {item.serial} answers at {first.address} and {item.address}: "
                     f"one printer with two network ports; it is read at {first.address}")
        else:
            by_serial[item.serial] = item
    return [*by_serial.values(), *anonymous]
