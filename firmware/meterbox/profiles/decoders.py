"""Decoders for vendor values that are not plain integers. Profiles name them; code defines them."""

from __future__ import annotations

from typing import Callable, Union

Raw = Union[int, bytes, str]
Decoder = Callable[[Raw], "int | dict[str, int] | None"]

DECODERS: dict[str, Decoder] = {}


def decoder(name: str) -> Callable[[Decoder], Decoder]:
    """Register a decoder under the name profiles use in `decode = "..."`."""
    def register(fn: Decoder) -> Decoder:
        DECODERS[name] = fn
        return fn
    return register


@decoder("int")
def integer(raw: Raw) -> int | None:
    """A plain counter; negative values are Printer-MIB 'unknown' states, not counts."""
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    text = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw).strip()
    return int(text) if text.isdigit() else None


@decoder("brother_words")
def brother_words(raw: Raw) -> dict[str, int] | None:
    """Brother packs counters as 7-byte words: code, 2 header bytes, 4-byte value; 0xFF ends."""
    if not isinstance(raw, bytes):
        return None
    body = raw.removesuffix(b"\xff")
    words = (body[i:i + 7] for i in range(0, len(body) - 6, 7))
    return {f"{w[0]:02x}": int.from_bytes(w[3:7], "big") for w in words}
