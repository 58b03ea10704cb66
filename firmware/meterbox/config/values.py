"""Value parsers: each turns what a person wrote into a value, or says in one phrase what is wrong."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meterbox.config.report import _did_you_mean, _Invalid
from meterbox.config.schema import MAX_RANGE, MIN_V3_KEY, AddressRange, IPAddress, ProxyConfig, Secret

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



def _serial(value: Any) -> str:
    """A printer serial number as on its label."""
    if not isinstance(value, str) or not value.strip():
        raise _Invalid('expected a serial number in quotes, such as "VNCRC48198"')
    return value.strip()


def _host_with_port(value: Any) -> tuple[str, int]:
    """A host to probe, on port 161 unless written with its port."""
    host, port = parse_host(value)
    return host, port or 161



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
