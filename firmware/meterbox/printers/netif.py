"""The box's own network interfaces and their IPv4 subnets: the only importer of ifaddr.

Names and flags come from the kernel of the calling thread's network namespace
(if_nameindex and SIOCGIFFLAGS), not from /sys, so this is right inside
`ip netns exec` as on the box itself.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

import ifaddr

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFREQ = struct.Struct("16sH22x")          # struct ifreq: name, then ifr_flags in the union


@dataclass(frozen=True)
class Interface:
    """One network interface: whether it is up, and its IPv4 addresses with their prefix."""

    name: str
    up: bool
    loopback: bool
    addresses: tuple[ipaddress.IPv4Interface, ...] = ()


def interfaces() -> list[Interface]:
    """Every interface the kernel knows, in index order, with its IPv4 addresses (none is fine)."""
    found: dict[str, list[ipaddress.IPv4Interface]] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):      # ifaddr gives IPv4 as str, IPv6 as a tuple
                found.setdefault(adapter.name, []).append(
                    ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}"))
    result = []
    for _, name in socket.if_nameindex():
        up, loopback = _flags(name)
        result.append(Interface(name, up, loopback, tuple(found.get(name, ()))))
    return result


def _flags(name: str) -> tuple[bool, bool]:
    """(up, loopback) of interface NAME; an interface that vanished meanwhile counts as down."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            raw = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, _IFREQ.pack(name.encode()[:15], 0))
    except OSError:
        return False, False
    flags = _IFREQ.unpack(raw)[1]
    return bool(flags & _IFF_UP), bool(flags & _IFF_LOOPBACK)
