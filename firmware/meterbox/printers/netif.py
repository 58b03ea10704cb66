"""The box's own network interfaces, their IPv4 subnets and the blocks of them a sweep covers.

The only importer of ifaddr.

Names and flags come from the kernel of the calling thread's network namespace
(if_nameindex and SIOCGIFFLAGS), not from /sys, so this is right inside
`ip netns exec` as on the box itself.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable
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


def own_subnets(interfaces: Iterable[Interface], max_prefix: int
                ) -> tuple[list[tuple[str, ipaddress.IPv4Network]], set[str], list[str]]:
    """(interface, network) blocks to sweep, the box's own addresses, and notes for the technician."""
    blocks: list[tuple[str, ipaddress.IPv4Network]] = []
    own: set[str] = set()
    notes: list[str] = []
    for iface in interfaces:
        own.update(str(a.ip) for a in iface.addresses)
        if iface.loopback or not iface.up:
            continue
        if not iface.addresses:
            notes.append(f"interface {iface.name} is up but has no IPv4 address: not swept "
                         "(if printers are on it, check its cable and DHCP)")
        for address in iface.addresses:
            block = _block(iface.name, address, max_prefix, notes)
            if block is not None and block not in blocks:
                blocks.append(block)
    return [(name, net) for name, net in blocks], own, notes


def _block(name: str, address: ipaddress.IPv4Interface, max_prefix: int,
           notes: list[str]) -> tuple[str, ipaddress.IPv4Network] | None:
    """The part of one interface subnet to sweep, capped at max_prefix around the box."""
    net = address.network
    if address.ip.is_link_local:
        notes.append(f"interface {name} has only the self-assigned address {address}: not swept "
                     "(DHCP gave it no address; check the network)")
        return None
    if net.prefixlen >= 31:
        return None
    if net.prefixlen < max_prefix:
        cut = ipaddress.IPv4Network(f"{address.ip}/{max_prefix}", strict=False)
        notes.append(f"interface {name}: {net} is larger than /{max_prefix}; sweeping only {cut} "
                     f"around the box (raise [discovery] max_prefix or add ranges for the rest)")
        net = cut
    return name, net
