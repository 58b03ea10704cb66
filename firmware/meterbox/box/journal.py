"""Where the logs go: the journal with structured fields under systemd, readable lines on stderr otherwise.

Fields come from ``extra=``: ``log.warning("...", extra={"METERBOX_SERIAL": serial,
"METERBOX_EVENT": "unreachable"})`` becomes ``METERBOX_SERIAL=`` and ``METERBOX_EVENT=`` in
``journalctl -o json``; the level becomes the journal's PRIORITY.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IDENTIFIER = "meterbox"


def under_systemd(environ: dict[str, str] | None = None) -> bool:
    """Started by systemd: its journal has our stderr (JOURNAL_STREAM) or we run in a unit (INVOCATION_ID)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def setup_logging(level: str | int = "info", *, stream: TextIO | None = None,
                  journal: bool | None = None) -> str:
    """Route the root logger to the journal or to STREAM (default stderr); returns "journal" or "stderr".

    JOURNAL defaults to under_systemd(); without systemd-python it falls back to stderr (which
    systemd also puts in the journal, only without the fields).
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler | None = None
    where = "stderr"
    if journal if journal is not None else under_systemd():
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            pass
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
            handler.setFormatter(logging.Formatter("%(message)s"))
            where = "journal"
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return where
