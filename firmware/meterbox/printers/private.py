"""What never leaves the box in a printer's identity: control characters, addresses, host names.

A serial or model is text the printer's agent chose, and some offices type into those fields:
a host name, an address, the device's own sysName. DESIGN.md promises that no IP address,
host name or MAC address leaves the building, and a terminal, a log line or the vendor's
database must not be steered by escape sequences. `printable` makes any agent text safe to
show, store and send; `Private` finds the words in it that are the office's, not the printer's.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

# ESC/C1 sequences as a whole (CSI "\x1b[31m", OSC "\x1b]0;title\x07", two-byte ESC x), so no
# visible remnant such as "[31m" is left behind when the escape character goes.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|[ -~])"
                      r"|\x9b[0-?]*[ -/]*[@-~]?|\x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?")

_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.]*\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?:%\w+)?"
                   r"(?![\w:.])")
_MAC = re.compile(r"(?<![\w:.-])[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}(?![\w:.-])")
# A dotted host name: labels of letters, digits and hyphens, the last one letters only
# (a top-level domain), so firmware versions such as "NH5.CY.N543" or "1.0.217" are not hosts.
_HOST = re.compile(r"(?<![\w.-])(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?(?![\w.-])")
_URL_OR_MAIL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
_LEFTOVER = re.compile(r"\(\s*\)|\[\s*\]|<\s*>|\{\s*\}")
_EDGES = " -_/:;,.|@#"


def printable(value: str | None, limit: int | None = None) -> str | None:
    """VALUE without escape sequences, control or format characters, in single spaces, cut to LIMIT.

    What a terminal (`meterbox status`), a log line, the store and the wire can all carry as is:
    ESC, BEL, DEL, the C1 controls and invisible format characters (bidi overrides) are removed,
    any white space becomes one space. A value longer than LIMIT is cut at a word where it can be.
    """
    if value is None:
        return None
    value = _ESCAPES.sub("", value)
    value = "".join(" " if ch.isspace() else ch for ch in value
                    if ch.isspace() or unicodedata.category(ch)[0] != "C")
    value = " ".join(value.split())
    if limit is not None and len(value) > limit:
        cut = value[:limit + 1].rsplit(" ", 1)[0]
        value = (cut if 0 < len(cut) <= limit else value[:limit]).rstrip()
    return value or None


@dataclass(frozen=True)
class Private:
    """The device's own names (its sysName, whole and its first label) and the office's words in a text.

    Example: with sysName "prn-acct-01.corp.example", "MX-3570N prn-acct-01 10.1.2.3" cuts to
    "MX-3570N", and a serial "PRN-ACCT-01" is refused.
    """

    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, sys_name: str | None) -> Private:
        name = (printable(sys_name) or "").lower()
        if not name:
            return cls()
        return cls(tuple(dict.fromkeys(n for n in (name, name.split(".")[0]) if n)))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where TEXT holds an address, a host name, a URL or e-mail address, or one of the names."""
        found = [m.span() for p in (_IPV4, _MAC, _HOST, _URL_OR_MAIL) for m in p.finditer(text)]
        found += [m.span() for m in _IPV6.finditer(text) if _is_ipv6(m.group())]
        lower = text.lower()
        for name in self.names:
            found += [m.span() for m in re.finditer(rf"(?<!\w){re.escape(name)}(?!\w)", lower)]
        return found

    def reason(self, serial: str) -> str | None:
        """Why SERIAL is the office's, not the printer's: it is or holds an address, host or sysName."""
        lower = serial.lower()
        if any(lower == n or (len(n) >= 4 and n in lower) for n in self.names):
            return "it is or holds the device's own name (sysName)"
        if self.spans(serial):
            return "it is or holds an address or a host name"
        return None

    def cut(self, text: str) -> str:
        """TEXT without the office's words; what is left of the printer's own text, tidied."""
        spans = sorted(self.spans(text))
        if not spans:
            return text
        kept, at = [], 0
        for start, end in spans:
            if start >= at:
                kept.append(text[at:start])
            at = max(at, end)
        kept.append(text[at:])
        rest = _LEFTOVER.sub(" ", " ".join("".join(kept).split()))
        return " ".join(rest.split()).strip(_EDGES)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True
