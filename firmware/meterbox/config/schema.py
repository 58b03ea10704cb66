"""The configuration's schema: the values the daemon runs with, and which keys each table has."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Secret(str):
    """A string that never prints: communities and keys must not reach logs or support bundles."""

    def __repr__(self) -> str:
        return "<secret>"

    def __str__(self) -> str:  # str(secret) is also redacted; use .reveal() where the value is needed
        return "<secret>"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Credential:
    """One SNMP credential set: v1/v2c community, or a v3 user (authNoPriv / authPriv)."""

    version: str = "2c"                      # "1", "2c" or "3"
    community: Secret = Secret("public")
    user: str = ""
    auth_protocol: str = "SHA"                # SHA, SHA224, SHA256, SHA384, SHA512, MD5
    auth_key: Secret | None = None
    priv_protocol: str = "AES"                # AES (=AES128), AES192, AES256, DES
    priv_key: Secret | None = None
    context: str = ""

    def describe(self) -> str:
        """What worked, for logs and `discover` output, without the secret itself."""
        if self.version == "3":
            level = "authPriv" if self.priv_key else ("authNoPriv" if self.auth_key else "noAuthNoPriv")
            return f"v3 user {self.user} ({level})"
        return f"v{self.version} community"


@dataclass(frozen=True)
class PrinterTarget:
    """A manually configured printer: address and the credential to read it with."""

    host: str
    port: int = 161
    credential: Credential = field(default_factory=Credential)


@dataclass(frozen=True)
class PollConfig:
    interval: float = 900.0      # seconds between polls of one printer
    timeout: float = 2.0         # seconds per SNMP request
    retries: int = 1
    concurrency: int = 16        # printers polled at once


@dataclass(frozen=True)
class UplinkConfig:
    host: str = ""
    port: int = 8883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: float = 60.0
    in_flight: int = 20          # messages awaiting PUBACK at once
    server_name: str = ""        # TLS name to check, if it differs from host
    transport: str = "auto"      # auto (MQTT on port, else WebSockets on websockets_port), mqtt, websockets
    websockets_port: int = 443
    websockets_path: str = "/mqtt"
    proxy: ProxyConfig | None = None
    heartbeat: float = 900.0     # seconds between two status messages (box health, no addresses)


@dataclass(frozen=True)
class ProxyConfig:
    """An office proxy the uplink tunnels through (HTTP CONNECT, or SOCKS5); the password never prints."""

    scheme: str                  # http or socks5
    host: str
    port: int
    user: str = ""
    password: Secret | None = None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.user + '@' if self.user else ''}{self.host}:{self.port}"


@dataclass(frozen=True)
class StoreConfig:
    max_bytes: int = 64 * 1024 * 1024


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AddressRange:
    """A block of addresses to sweep, kept as written ("192.0.2.0/24", "192.0.2.10-192.0.2.50") for messages."""

    first: IPAddress
    last: IPAddress
    text: str = ""

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def addresses(self) -> Iterator[IPAddress]:
        """Every address from first to last, in order."""
        make = type(self.first)
        return (make(n) for n in range(int(self.first), int(self.last) + 1))

    def __str__(self) -> str:
        return self.text or f"{self.first}-{self.last}"


@dataclass(frozen=True)
class DiscoveryConfig:
    """How the box finds printers by itself: its own subnets, mDNS, and the ranges and hosts listed."""

    enabled: bool | None = None  # None: on when no [[printers]] are listed (zero configuration)
    interval: float = 3600.0     # seconds between sweeps
    max_prefix: int = 22         # an interface subnet larger than this is cut to the /22 around the box
    ranges: tuple[AddressRange, ...] = ()
    hosts: tuple[tuple[str, int], ...] = ()
    rate: int = 500              # SNMP packets per second, at most
    concurrency: int = 256       # addresses probed at once
    mdns: bool = True


@dataclass(frozen=True)
class EnrollConfig:
    """Which printers the office lets the box report: the rest are shown locally, and nothing leaves."""

    auto: bool = True                 # every printer found, new ones included
    serials: tuple[str, ...] = ()     # with auto = false: only these

    def allows(self, serial: str) -> bool:
        return self.auto or serial in self.serials


@dataclass(frozen=True)
class PanelConfig:
    """The button and LEDs: on where GPIO exists (None), or forced; the site's pin overrides (BCM)."""

    enabled: bool | None = None
    pins: tuple[tuple[str, int], ...] = ()
    where: str = ""               # "meterbox.toml line 40", for the pin map's messages


@dataclass(frozen=True)
class Config:
    box_id: str
    state_dir: Path
    poll: PollConfig = field(default_factory=PollConfig)
    printers: tuple[PrinterTarget, ...] = ()
    credentials: tuple[Credential, ...] = ()
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    enroll: EnrollConfig = field(default_factory=EnrollConfig)
    log_level: str = "info"
    runtime_dir: Path = Path("/run/meterbox")   # tmpfs: live status, pause when the state dir is read-only
    identity: Path | None = None  # the factory identity (box id, key, claim code, vendor): enrollment
    vendor_ca_file: Path | None = None  # the CA of the vendor's HTTPS service (default: the system's)
    panel: PanelConfig = field(default_factory=lambda: PanelConfig())
    local: frozenset[str] = frozenset()  # settings written in the file, which the vendor's site config never overrides
    path: Path | None = None     # the file it came from, for error messages


# ---------------------------------------------------------------------------- schema

SECRET_KEYS = frozenset({"community", "auth_key", "priv_key", "proxy"})
V3_ONLY_KEYS = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key", "context")
CREDENTIAL_KEYS = ("version", "community", *V3_ONLY_KEYS)
ARRAY_TABLES = frozenset({"printers", "credentials"})
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "": ("box", "poll", "printers", "credentials", "uplink", "store", "discovery", "enroll", "panel"),
    "panel": ("enabled", "button", "green", "amber", "red"),
    "box": ("id", "state_dir", "runtime_dir", "log_level", "identity", "vendor_ca_file"),
    "poll": ("interval", "timeout", "retries", "concurrency"),
    "printers": ("host", "port", *CREDENTIAL_KEYS),
    "credentials": CREDENTIAL_KEYS,
    "uplink": ("host", "port", "ca_file", "cert_file", "key_file", "keepalive", "in_flight", "server_name",
               "transport", "websockets_port", "websockets_path", "proxy", "heartbeat"),
    "store": ("max_size",),
    "enroll": ("auto", "serials"),
    "discovery": ("enabled", "interval", "max_prefix", "ranges", "hosts", "rate", "concurrency", "mdns"),
}
VERSIONS = ("1", "2c", "3")
AUTH_PROTOCOLS = ("SHA", "SHA224", "SHA256", "SHA384", "SHA512", "MD5")
PRIV_PROTOCOLS = ("AES", "AES128", "AES192", "AES256", "DES")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_RANGE = 65536                           # addresses in one range: a /16, swept in about a minute
MIN_V3_KEY = 8                              # RFC 3414: shorter passphrases are refused by agents
DEFAULT_STATE_DIR = Path("/var/lib/meterbox")
DEFAULT_RUNTIME_DIR = Path("/run/meterbox")
_NO_HOST: tuple[str, int | None] = ("", None)
