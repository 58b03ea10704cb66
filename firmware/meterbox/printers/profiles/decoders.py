"""Decoders for vendor values that are not plain integers. Profiles name them; code defines them.

Each decoder takes the raw SNMP value (int, bytes or a dotted OID string) and returns a
number, a {code: number} dict for packed blobs, a text for identity values, or None when
the value does not have the documented shape (a blob of another layout, a placeholder).
A decoder never raises on what a printer sends: registered decoders are wrapped so that
any surprise is None and one log line (once per decoder and kind of failure).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Callable, Iterator, Union, TypeVar

from meterbox.logs import log_once

log = logging.getLogger(__name__)

Raw = Union[int, bytes, str]
Decoded = Union[int, dict[str, int], str, None]
Decoder = Callable[[Raw], Decoded]

DECODERS: dict[str, Decoder] = {}
#: what each decoder yields, so the schema check can tell a blob rule from a scalar one
KINDS: dict[str, str] = {}


F = TypeVar("F", bound=Decoder)


def decoder(name: str, kind: str = "int") -> Callable[[F], F]:
    """Register a decoder under the name profiles use in `decode = "..."`; it never raises (see above)."""
    def register(fn: F) -> F:
        DECODERS[name] = _never_raises(name, fn)
        KINDS[name] = kind
        return fn
    return register


def _never_raises(name: str, fn: Decoder) -> Decoder:
    @functools.wraps(fn)
    def call(raw: Raw) -> Decoded:
        try:
            return fn(raw)
        except Exception as err:  # noqa: BLE001 -- whatever a printer sends must not stop a poll
            log_once(log, ("decoder", name, type(err).__name__), "a value the %s decoder cannot read was left out "
                     "(%s: %s); this is logged once", name, type(err).__name__, str(err)[:80])
            return None
    return call


#: the longest decimal count a printer can mean: 2^64 has 20 digits
MAX_DIGITS = 20


def _text(raw: Raw) -> str:
    if isinstance(raw, bytes):
        raw = raw.split(b"\x00", 1)[0]
        try:
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return raw.decode("latin-1").strip()
    return str(raw).strip()


@decoder("int")
def integer(raw: Raw) -> int | None:
    """A plain counter; negative values are Printer-MIB 'unknown' states, not counts."""
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    text = _text(raw)
    # "²".isdigit() is True and int() refuses it; 5,000 digits are no count either
    return int(text) if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS else None


@decoder("text", kind="text")
def text(raw: Raw) -> str | None:
    """A DisplayString: UTF-8 if valid, else Latin-1; trimmed."""
    return _text(raw) or None


@decoder("hp_pml_text", kind="text")
def hp_pml_text(raw: Raw) -> str | None:
    """HP PML strings carry a 2-byte symbol-set prefix (e.g. 01 15) before the text."""
    if isinstance(raw, bytes) and len(raw) >= 2 and raw[0] < 0x20 and raw[1] < 0x20:
        raw = raw[2:]
    return text(raw)


_IEEE1284 = re.compile(r"\s*([A-Za-z ]+?)\s*:\s*([^;]*);?")


def ieee1284(raw: Raw) -> dict[str, str]:
    """The IEEE-1284 device id ("MFG:x;MDL:y;...") as {KEY: value}, keys upper case."""
    return {k.upper(): v.strip() for k, v in _IEEE1284.findall(_text(raw))}


@decoder("ieee1284_model", kind="text")
def ieee1284_model(raw: Raw) -> str | None:
    """The model family of an IEEE-1284 device id (MDL, or MODEL on OKI)."""
    fields = ieee1284(raw)
    return fields.get("MDL") or fields.get("MODEL") or None


@decoder("ieee1284_description", kind="text")
def ieee1284_description(raw: Raw) -> str | None:
    """The exact model of an IEEE-1284 device id (DES; HP puts "M130nw" there, "M129-M134" in MDL)."""
    fields = ieee1284(raw)
    des = fields.get("DES") or fields.get("DESCRIPTION")
    return des.split(",")[0].strip() if des else ieee1284_model(raw)


def _brother_records(raw: Raw) -> Iterator[tuple[str, bytes]]:
    """Brother blobs are records `code, 01, length, value[length]`, ended by FF."""
    if not isinstance(raw, bytes):
        return
    i = 0
    while i + 3 <= len(raw) and raw[i] != 0xFF:
        length = raw[i + 2]
        value = raw[i + 3:i + 3 + length]
        if raw[i + 1] != 0x01 or len(value) != length:
            return  # not the documented layout: stop rather than guess
        yield f"{raw[i]:02x}", value
        i += 3 + length


@decoder("brother_words", kind="words")
def brother_words(raw: Raw) -> dict[str, int] | None:
    """Brother packs counters as records: code, 01, 04, 4-byte big-endian value; 0xFF ends.

    Records of another length (the 1-byte status records of the HL-5350DN) are skipped.
    """
    if not isinstance(raw, bytes):
        return None
    return {code: int.from_bytes(v, "big") for code, v in _brother_records(raw) if len(v) == 4}


@decoder("brother_legacy_percent", kind="words")
def brother_legacy_percent(raw: Raw) -> dict[str, int] | None:
    """Old Brother models (MFC-5490CN) give levels as records code, 01, 02, level, max."""
    if not isinstance(raw, bytes):
        return None
    return {code: round(v[0] * 100 / v[1]) for code, v in _brother_records(raw)
            if len(v) == 2 and v[1] > 0}
