"""Log a recurring problem once: a bad value or a refused payload comes back on every poll."""

from __future__ import annotations

import logging

_SEEN: set[tuple[str, ...]] = set()
LIMIT = 1000   # distinct problems remembered; past that, nothing more is logged (bounded memory)


def log_once(logger: logging.Logger, key: tuple[str, ...], message: str, *args: object) -> None:
    """One WARNING per KEY for the life of the process."""
    if key not in _SEEN and len(_SEEN) < LIMIT:
        _SEEN.add(key)
        logger.warning(message, *args)
