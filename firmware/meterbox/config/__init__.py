"""The box's TOML configuration: one schema, every problem reported at once with file, line and fix."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from meterbox.errors import ConfigError

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
    path: Path | None = None     # the file it came from, for error messages


# ---------------------------------------------------------------------------- schema

SECRET_KEYS = frozenset({"community", "auth_key", "priv_key", "proxy"})
V3_ONLY_KEYS = ("user", "auth_protocol", "auth_key", "priv_protocol", "priv_key", "context")
CREDENTIAL_KEYS = ("version", "community", *V3_ONLY_KEYS)
ARRAY_TABLES = frozenset({"printers", "credentials"})
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "": ("box", "poll", "printers", "credentials", "uplink", "store", "discovery", "enroll"),
    "box": ("id", "state_dir", "runtime_dir", "log_level"),
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


# ---------------------------------------------------------------------------- problems

@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file; all are gathered first so one edit session fixes them all."""

    subject: str                # 'uplink.port = "8883x"' or 'poll.intervall'
    message: str                # what is wrong and what to do
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}  " if self.line else ""
        return f"{where}{self.subject}: {self.message}"


class ConfigProblems(ConfigError):
    """A ConfigError that also carries each Problem, for `check-config` and tests."""

    def __init__(self, path: Path, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        count = len(self.problems)
        head = f"{path} has {count} problem{'' if count == 1 else 's'}; nothing was changed:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class _Invalid(ValueError):
    """Raised by a value parser; the table that read the value adds its key and line."""


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    """The closest known word, because most mistakes are typos."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def _show(key: str, value: Any) -> str:
    """VALUE as written in TOML, or <secret> for communities and keys, which must never print."""
    if key in SECRET_KEYS:
        return "<secret>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return str(value)


# ---------------------------------------------------------------------------- value parsers

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]i?B|B)", re.IGNORECASE)
_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_BOX_ID = re.compile(r"MB-[0-9A-F]{6}")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_BRACKETED = re.compile(r"\[([^\]]*)\](?::(.*))?")
_HOST_HINT = ('expected an address such as "192.0.2.10", "printer.example.com", '
              '"192.0.2.10:1161" or "[2001:db8::10]:161"')


def _bare_number(value: Any) -> str | None:
    """The number as written if VALUE has no unit, so the suggestion can reuse it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return value.strip()
    return None


def parse_duration(value: Any) -> float:
    """Seconds from "500ms", "2s", "5m", "1h" or "1d"; the unit is required because a bare 300 is ambiguous."""
    bare = _bare_number(value)
    if bare is not None:
        raise _Invalid(f'a duration needs a unit (ms, s, m, h or d); did you mean "{bare}s"?')
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _Invalid('expected a duration such as "500ms", "2s", "15m", "1h" or "1d"')
    seconds = float(match[1]) * _SECONDS[match[2]]
    if seconds <= 0:
        raise _Invalid("must be longer than 0")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from "64MB" or "64MiB"; the unit is required because a bare 64 could be bytes or megabytes."""
    bare = _bare_number(value)
    if bare is not None:
        raise _Invalid(f'a size needs a unit (B, KB, MB, GB, KiB, MiB or GiB); did you mean "{_size_hint(bare)}"?')
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _Invalid('expected a size such as "64MB" or "1GiB"')
    size = int(float(match[1]) * _BYTES[match[2].lower()])
    if size <= 0:
        raise _Invalid("must be larger than 0")
    return size


def _size_hint(bare: str) -> str:
    """Small bare numbers were meant as megabytes, large ones as bytes (shown in the unit they fill)."""
    number = float(bare)
    if number < 1024 or not number.is_integer():
        return f"{bare}MB" if number < 1024 else f"{bare}B"
    for unit in ("GiB", "MiB", "KiB"):
        if number % _BYTES[unit.lower()] == 0:
            return f"{int(number) // _BYTES[unit.lower()]}{unit}"
    return f"{int(number)}B"


def _whole(low: int, high: int) -> Callable[[Any], int]:
    """A bounded integer parser; bools are refused although Python counts them as ints."""
    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        quoted = isinstance(value, str) and value.strip().isdigit()
        raise _Invalid(f"expected a whole number {low}–{high}" + ("; write it without quotes" if quoted else ""))
    return parse


def _text(value: Any) -> str:
    """Any string; numbers and tables are refused rather than silently converted."""
    if not isinstance(value, str):
        raise _Invalid("expected a string in quotes")
    return value


def _filled(value: Any) -> str:
    """A string with something in it, for names that cannot be blank."""
    text = _text(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _secret(value: Any) -> Secret:
    """Communities and keys become Secret at once, so nothing later can print them."""
    return Secret(_filled(value))


def _v3_key(value: Any) -> Secret:
    """An SNMPv3 passphrase; agents refuse ones shorter than 8 characters, so we do first."""
    key = _secret(value)
    if len(key) < MIN_V3_KEY:
        raise _Invalid(f"too short; SNMPv3 keys need at least {MIN_V3_KEY} characters")
    return key


def _choice(options: tuple[str, ...], fold: Callable[[str], str]) -> Callable[[Any], str]:
    """A parser for one of a few words; FOLD forgives case (sha256 -> SHA256)."""
    def parse(value: Any) -> str:
        word = fold(value.strip()) if isinstance(value, str) else str(value)
        if isinstance(value, str) and word in options:
            return word
        listed = ", ".join(f'"{option}"' for option in options)
        kind = "one of" if isinstance(value, str) else "a string, one of"
        raise _Invalid(f"expected {kind} {listed}" + _did_you_mean(word, options))
    return parse


def _bool(value: Any) -> bool:
    """true or false; a quoted "true" is refused so that "false" cannot silently mean true."""
    if isinstance(value, bool):
        return value
    quoted = isinstance(value, str) and value.strip().lower() in ("true", "false")
    raise _Invalid("expected true or false" + ("; write it without quotes" if quoted else ""))


def _prefix(value: Any) -> int:
    """A prefix length 16–30, forgiving the slash people copy from "/22"."""
    if isinstance(value, str) and value.strip().lstrip("/").isdigit():
        raise _Invalid(f"expected a whole number 16–30; write it without quotes or slash: {value.strip().lstrip('/')}")
    return _whole(16, 30)(value)


def _box_id(value: Any) -> str:
    """The id printed on the label; checked here so a typo is not first noticed at enrollment."""
    if isinstance(value, str) and _BOX_ID.fullmatch(value):
        return value
    fixed = value.strip().upper() if isinstance(value, str) else ""
    hint = f'; did you mean "{fixed}"?' if _BOX_ID.fullmatch(fixed) else ""
    raise _Invalid(f'expected "MB-" and 6 hex digits as on the label, such as "MB-7F3A9C"{hint}')


def _path_under(base: Path) -> Callable[[Any], Path]:
    """Relative paths count from the config file's directory, not from wherever the daemon started."""
    def parse(value: Any) -> Path:
        return base / _filled(value)
    return parse


def parse_host(value: Any) -> tuple[str, int | None]:
    """Split "host", "host:port" or "[IPv6]:port", since people paste addresses with the port on."""
    if not isinstance(value, str):
        raise _Invalid(_HOST_HINT)
    host, port = _split_port(value.strip())
    if not _is_host(host):
        raise _Invalid(_HOST_HINT)
    return host, port


_RANGE_HINT = 'expected a range such as "192.0.2.0/24", "192.0.2.10-192.0.2.50" or "192.0.2.10-50"'


def parse_range(value: Any) -> AddressRange:
    """A CIDR block, FIRST-LAST (or FIRST-lastoctet) or one address; network and broadcast are left out."""
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(_RANGE_HINT)
    text = value.strip()
    try:
        first, last = _range_ends(text)
    except _Invalid:
        raise
    except ValueError:
        raise _Invalid(_RANGE_HINT) from None
    found = AddressRange(first, last, text)
    if found.size > MAX_RANGE:
        raise _Invalid(f"too large ({found.size:,} addresses); one range may hold at most "
                       f"{MAX_RANGE:,} (a /16): split it, or list only the subnets with printers")
    return found


def _range_ends(text: str) -> tuple[IPAddress, IPAddress]:
    """First and last address of TEXT; ValueError (or _Invalid, with a reason) when it is no range."""
    if "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        if net.version == 4 and net.prefixlen <= 30:
            return net[1], net[-2]
        return net[0], net[-1]
    if "-" not in text:
        address = ipaddress.ip_address(text)
        return address, address
    head, tail = (part.strip() for part in text.split("-", 1))
    first = ipaddress.ip_address(head)
    if tail.isdigit() and first.version == 4:                 # "192.0.2.10-50"
        tail = head.rsplit(".", 1)[0] + "." + tail
    last = ipaddress.ip_address(tail)
    if last.version != first.version or int(last) < int(first):
        raise _Invalid(f"the last address {last} must be the same kind as, and not before, {first}")
    return first, last


def _split_port(text: str) -> tuple[str, int | None]:
    """Host and optional port; an unbracketed IPv6 address (two or more colons) has no port."""
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        if not _is_ipv6(bracketed[1]):
            raise _Invalid("only an IPv6 address goes inside [brackets]")
        return bracketed[1], _port_text(bracketed[2])
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, _port_text(port)
    return text, None


def _port_text(text: str | None) -> int | None:
    """The port written after a colon, if any."""
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _Invalid('the port after ":" must be a whole number 1–65535')
    return int(text)


def _is_ipv6(text: str) -> bool:
    """True for an IPv6 address (scope ids included)."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_host(host: str) -> bool:
    """IPv4, IPv6 or a DNS name; a dotted quad that is no address (192.0.2.300) is refused."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[\d.]+", host):
        return False
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels)


# ---------------------------------------------------------------------------- line numbers

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]")
_KEY_LINE = re.compile(r"""\s*("[^"]*"|'[^']*'|[\w-]+)\s*[=.]""")
LineKey = tuple[str, int, str]      # (table, occurrence of [[array]] or 0, key or "" for the header)


def _line_index(text: str) -> dict[LineKey, int]:
    """The line of each key and header, since tomllib keeps no positions; the first one wins."""
    lines: dict[LineKey, int] = {}
    arrays: dict[str, int] = {}
    table, index = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        key = None if header else _KEY_LINE.match(raw)
        if header:
            table, index = _enter(header[2], header[1] == "[[", arrays)
            lines.setdefault((table, index, ""), number)
            parent, _, last = table.rpartition(".")       # [box] is also key "box" of the top level
            lines.setdefault((parent, arrays.get(parent, 0), last), number)
        elif key:
            lines.setdefault((table, index, key[1].strip("\"'")), number)
    return lines


def _enter(name: str, is_array: bool, arrays: dict[str, int]) -> tuple[str, int]:
    """The table a header opens, and which [[array]] entry it is (counting from 1)."""
    table = ".".join(part.strip().strip("\"'") for part in name.split("."))
    if not is_array:
        return table, 0
    arrays[table] = arrays.get(table, 0) + 1
    return table, arrays[table]


# ---------------------------------------------------------------------------- tables

_MISSING: Any = object()


class _Reader:
    """What all tables of one file share: the problems found so far and where keys are."""

    def __init__(self, text: str, base: Path) -> None:
        self.lines = _line_index(text)
        self.base = base
        self.problems: list[Problem] = []


class _Table:
    """One TOML table being read; each problem it records carries its key's line."""

    def __init__(self, reader: _Reader, data: Mapping[str, Any], table: str = "", index: int = 0) -> None:
        self.reader, self.data, self.table, self.index = reader, data, table, index
        self.bad: set[str] = set()

    @property
    def name(self) -> str:
        """How messages name the table: "poll", or "printers[2]" for the second [[printers]]."""
        return f"{self.table}[{self.index}]" if self.index else self.table

    def line(self, key: str) -> int | None:
        """The key's line, else its table header's, else None (e.g. inline tables)."""
        lines = self.reader.lines
        return lines.get((self.table, self.index, key)) or lines.get((self.table, self.index, ""))

    def problem(self, key: str, message: str, value: Any = _MISSING) -> None:
        """Record that KEY is wrong, echoing its value unless it is a secret."""
        subject = ".".join(part for part in (self.name, key) if part)
        if value is not _MISSING:
            subject += " = " + _show(key, value)
        self.bad.add(key)
        self.reader.problems.append(Problem(subject, message, self.line(key)))

    def get(self, key: str, parse: Callable[[Any], T], default: T, missing: str = "") -> T:
        """KEY parsed, or DEFAULT when absent or bad; bad values (and absent required ones) are recorded."""
        if key not in self.data:
            if missing:
                self.problem(key, missing)
            return default
        try:
            return parse(self.data[key])
        except _Invalid as exc:
            self.problem(key, str(exc), self.data[key])
            return default

    def check_keys(self) -> None:
        """Record keys the schema does not know, with the closest known one."""
        for key, value in self.data.items():
            if key not in TABLE_KEYS[self.table]:
                self.problem(key, _unknown(self.table, key, value))


def _header(name: str) -> str:
    """How a table's header is written, for messages."""
    return f"[[{name}]]" if name in ARRAY_TABLES else f"[{name}]"


def _unknown(table: str, key: str, value: Any) -> str:
    """Why KEY is not accepted; a top-level key that belongs in a table says which."""
    homes = [name for name, keys in TABLE_KEYS.items() if name and key in keys]
    if len(homes) > 1 and "discovery" in homes:     # interval, concurrency: almost always meant for [poll]
        homes.remove("discovery")
    if not table and homes and not isinstance(value, (dict, list)):
        return "not a top-level key; move it under " + " or ".join(map(_header, homes))
    kind = "unknown table" if not table else "unknown key"
    return kind + _did_you_mean(key, TABLE_KEYS[table])


def _section(top: _Table, name: str) -> _Table:
    """The [NAME] table, or an empty one (after recording why) so reading goes on."""
    value = top.data.get(name, {})
    if not isinstance(value, dict):
        top.problem(name, f"expected a table; write it as a [{name}] header with its keys below")
        value = {}
    table = _Table(top.reader, value, name)
    table.check_keys()
    return table


def _entries(top: _Table, name: str) -> list[_Table]:
    """Each [[NAME]] entry as a table; a single [NAME] or a plain value is recorded as a problem."""
    value = top.data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        top.problem(name, f"expected [[{name}]] entries (double brackets), one per {name[:-1]}")
        return []
    tables = [_Table(top.reader, item, name, number) for number, item in enumerate(value, start=1)]
    for table in tables:
        table.check_keys()
    return tables


# ---------------------------------------------------------------------------- sections

def _port(table: _Table, in_host: int | None, default: int) -> int:
    """The port key, or the one written in host; both given and different is an error."""
    port = table.get("port", _whole(1, 65535), in_host or default)
    if in_host and "port" in table.data and "port" not in table.bad and port != in_host:
        table.problem("port", f"differs from the port in host ({in_host}); keep only one", table.data["port"])
    return port


def _poll(table: _Table) -> PollConfig:
    """How often and how patiently printers are read."""
    default = PollConfig()
    return PollConfig(
        interval=table.get("interval", parse_duration, default.interval),
        timeout=table.get("timeout", parse_duration, default.timeout),
        retries=table.get("retries", _whole(0, 10), default.retries),
        concurrency=table.get("concurrency", _whole(1, 256), default.concurrency),
    )


def _credential(table: _Table) -> Credential:
    """One credential set, checked by the rules of its SNMP version."""
    version = table.get("version", _choice(VERSIONS, str.lower), "2c")
    return _v3(table) if version == "3" else _community(table, version)


def _community(table: _Table, version: str) -> Credential:
    """v1/v2c: a community only; v3 keys here mean version = "3" was forgotten."""
    if "version" not in table.bad:
        for key in V3_ONLY_KEYS:
            if key in table.data:
                table.problem(key, f'only used with version = "3"; add version = "3" or remove {key}')
    return Credential(version=version, community=table.get("community", _secret, Secret("public")))


def _v3(table: _Table) -> Credential:
    """SNMPv3: a user, keys long enough for the agent, and no privacy without authentication."""
    if "community" in table.data:
        table.problem("community", 'only used with version "1" or "2c"; SNMPv3 uses user, auth_key and priv_key')
    if "priv_key" in table.data and "auth_key" not in table.data:
        table.problem("priv_key", "needs auth_key too (SNMPv3 has no privacy without authentication); add auth_key")
    priv_protocol = table.get("priv_protocol", _choice(PRIV_PROTOCOLS, str.upper), "AES")
    return Credential(
        version="3",
        user=table.get("user", _filled, "", missing='missing; add user = "..." (the SNMPv3 user name)'),
        auth_protocol=table.get("auth_protocol", _choice(AUTH_PROTOCOLS, str.upper), "SHA"),
        auth_key=table.get("auth_key", _v3_key, None),
        priv_protocol="AES" if priv_protocol == "AES128" else priv_protocol,
        priv_key=table.get("priv_key", _v3_key, None),
        context=table.get("context", _text, ""),
    )


def _printers(tables: list[_Table]) -> tuple[PrinterTarget, ...]:
    """Manual printers; one address listed twice is refused, since it would be polled twice."""
    seen: dict[tuple[str, int], str] = {}
    printers: list[PrinterTarget] = []
    for table in tables:
        host, in_host = table.get("host", parse_host, _NO_HOST,
                                  missing='missing; add host = "192.0.2.10" (an address or DNS name)')
        printer = PrinterTarget(host, _port(table, in_host, 161), _credential(table))
        address = (host.lower(), printer.port)
        if host and address in seen:
            table.problem("host", f"same printer as {seen[address]}; remove one of them", table.data["host"])
        seen.setdefault(address, table.name)
        printers.append(printer)
    return tuple(printers)


def _discovery(table: _Table) -> DiscoveryConfig:
    """Sweep settings; each bad range or host is its own problem, naming the entry."""
    default = DiscoveryConfig()
    return DiscoveryConfig(
        enabled=table.get("enabled", _bool, default.enabled),
        interval=table.get("interval", parse_duration, default.interval),
        max_prefix=table.get("max_prefix", _prefix, default.max_prefix),
        ranges=tuple(_each(table, "ranges", parse_range)),
        hosts=tuple(_each(table, "hosts", _host_with_port)),
        rate=table.get("rate", _whole(1, 10000), default.rate),
        concurrency=table.get("concurrency", _whole(1, 4096), default.concurrency),
        mdns=table.get("mdns", _bool, default.mdns),
    )


def _enroll(table: _Table) -> EnrollConfig:
    """auto = true, or the serial numbers the key user picked."""
    serials = tuple(_each(table, "serials", _serial))
    auto = table.get("auto", _bool, not serials)
    return EnrollConfig(auto=auto, serials=serials)


def _serial(value: Any) -> str:
    """A printer serial number as on its label."""
    if not isinstance(value, str) or not value.strip():
        raise _Invalid('expected a serial number in quotes, such as "VNCRC48198"')
    return value.strip()


def _host_with_port(value: Any) -> tuple[str, int]:
    """A host to probe, on port 161 unless written with its port."""
    host, port = parse_host(value)
    return host, port or 161


def _each(table: _Table, key: str, parse: Callable[[Any], T]) -> list[T]:
    """Every good entry of the list KEY; each bad one is recorded with its own value."""
    values = table.data.get(key, [])
    if not isinstance(values, list):
        table.problem(key, f'expected a list in brackets, such as {key} = ["…", "…"]', values)
        return []
    parsed: list[T] = []
    for value in values:
        try:
            parsed.append(parse(value))
        except _Invalid as exc:
            table.problem(key, str(exc), value)
    return parsed


TRANSPORTS = ("auto", "mqtt", "websockets")
_PROXY_HINT = 'expected a proxy URL such as "http://proxy.example.com:3128" or "http://user:password@192.0.2.1:8080"'


def _url_path(value: Any) -> str:
    """A WebSocket path; it must start with "/" as in a URL."""
    text = _filled(value)
    if not text.startswith("/"):
        raise _Invalid(f'must start with "/"; did you mean "/{text}"?')
    return text


def parse_proxy(value: Any) -> ProxyConfig | None:
    """An office proxy URL; HTTP CONNECT ("http://") or SOCKS5, with optional user and password; "" is none."""
    from urllib.parse import unquote, urlsplit

    if value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(_PROXY_HINT)
    text = value.strip()
    if "://" not in text:
        raise _Invalid(f'{_PROXY_HINT}; add "http://" in front')
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        raise _Invalid(_PROXY_HINT) from None
    scheme = url.scheme.lower()
    if scheme == "https":
        raise _Invalid('the box reaches the proxy with HTTP CONNECT (the tunnel itself is TLS); '
                       'write "http://" even where browsers use https_proxy')
    if scheme not in ("http", "socks5"):
        raise _Invalid(f'{_PROXY_HINT}; "http://" or "socks5://" only')
    if not url.hostname or not _is_host(url.hostname) or url.path not in ("", "/"):
        raise _Invalid(_PROXY_HINT)
    return ProxyConfig(scheme, url.hostname, port or (1080 if scheme == "socks5" else 8080),
                       unquote(url.username or ""), Secret(unquote(url.password)) if url.password else None)


def _uplink(table: _Table, present: bool) -> UplinkConfig:
    """The vendor broker; file paths are made absolute so the daemon can start from any directory."""
    default, path = UplinkConfig(), _path_under(table.reader.base)
    host, in_host = table.get("host", parse_host, _NO_HOST,
                              missing='missing; add host = "broker.example.com"' if present else "")
    for have, need in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if have in table.data and need not in table.data:
            table.problem(have, f"needs {need} too (a client certificate and its private key go together); add {need}")
    return UplinkConfig(
        host=host,
        port=_port(table, in_host, default.port),
        ca_file=table.get("ca_file", path, None),
        cert_file=table.get("cert_file", path, None),
        key_file=table.get("key_file", path, None),
        keepalive=table.get("keepalive", parse_duration, default.keepalive),
        in_flight=table.get("in_flight", _whole(1, 65535), default.in_flight),
        server_name=table.get("server_name", _text, default.server_name),
        transport=table.get("transport", _choice(TRANSPORTS, str.lower), default.transport),
        websockets_port=table.get("websockets_port", _whole(1, 65535), default.websockets_port),
        websockets_path=table.get("websockets_path", _url_path, default.websockets_path),
        proxy=table.get("proxy", parse_proxy, None),
        heartbeat=table.get("heartbeat", parse_duration, default.heartbeat),
    )


def _config(doc: dict[str, Any], reader: _Reader, path: Path) -> Config:
    """Every section read in one pass, so every problem is known before any is reported."""
    top = _Table(reader, doc)
    top.check_keys()
    box = _section(top, "box")
    return Config(
        box_id=box.get("id", _box_id, "", missing='missing; add id = "MB-…" under [box], as printed on the label'),
        state_dir=box.get("state_dir", _path_under(reader.base), DEFAULT_STATE_DIR),
        log_level=box.get("log_level", _choice(LOG_LEVELS, str.lower), "info"),
        runtime_dir=box.get("runtime_dir", _path_under(reader.base), DEFAULT_RUNTIME_DIR),
        poll=_poll(_section(top, "poll")),
        printers=_printers(_entries(top, "printers")),
        credentials=tuple(_credential(table) for table in _entries(top, "credentials")),
        uplink=_uplink(_section(top, "uplink"), present="uplink" in doc),
        store=StoreConfig(_section(top, "store").get("max_size", parse_size, StoreConfig().max_bytes)),
        discovery=_discovery(_section(top, "discovery")),
        enroll=_enroll(_section(top, "enroll")),
        path=path,
    )


# ---------------------------------------------------------------------------- entry point

def _read(path: Path) -> str:
    """The file's text; a missing or unreadable file is one clear error, not a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; create it (see meterbox.example.toml) "
                          "or give the right path") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); "
                          "check that it is a file the meterbox user may read") from exc


def load(path: Path) -> Config:
    """Read and validate FILE; raise ConfigError listing every problem with its line."""
    path = Path(path)
    text = _read(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix that line, nothing was changed") from exc
    reader = _Reader(text, path.absolute().parent)
    config = _config(doc, reader, path)
    if reader.problems:
        raise ConfigProblems(path, reader.problems)
    return config
