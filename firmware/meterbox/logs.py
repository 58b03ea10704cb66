"""Log a condition when it starts or changes, not on every retry (STYLE.md §6).

A printer that is off, a broker that is down or a full disk would otherwise write the
same line every few seconds: the journal fills, the SD card wears and the one line a
technician needs scrolls away. `Once` remembers what it said per key.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any


_SEEN: set[tuple[str, ...]] = set()
LIMIT = 1000   # distinct problems remembered by log_once; past that, nothing more is logged (bounded memory)


def log_once(logger: logging.Logger, key: tuple[str, ...], message: str, *args: object) -> None:
    """One WARNING per KEY for the life of the process: a bad value comes back on every poll."""
    if key not in _SEEN and len(_SEEN) < LIMIT:
        _SEEN.add(key)
        logger.warning(message, *args)


class Once:
    """Says each condition once per key; `clear` says whether it had been said (for "… again")."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self._said: dict[Hashable, str] = {}

    def say(self, key: Hashable, text: str, level: int = logging.WARNING,
            extra: Mapping[str, Any] | None = None) -> bool:
        """Log TEXT unless it is what was said last for KEY; True if it was logged."""
        if self._said.get(key) == text:
            return False
        self._said[key] = text
        self.log.log(level, "%s", text, extra=extra)
        return True

    def clear(self, key: Hashable) -> bool:
        """The condition is over; True if it had been said (the caller may log the recovery)."""
        return self._said.pop(key, None) is not None

    def said(self, key: Hashable) -> str | None:
        return self._said.get(key)


def plural(count: int, word: str, many: str | None = None) -> str:
    """ "1 address", "2 addresses": log lines and tables read as sentences."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
