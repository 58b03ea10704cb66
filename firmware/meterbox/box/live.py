"""The running daemon's own account of itself, for `meterbox status` and systemd's STATUS= line.

The store says what happened; only the daemon knows what is happening now (connected?
a store it cannot write? readings kept in memory?). It writes a small JSON file to the
runtime directory (a tmpfs: no SD card wear) when something changes, at most once a
second; `meterbox status` reads it, and tells from its pid whether the daemon runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE = "status.json"


def write(runtime_dir: Path, status: dict[str, Any]) -> bool:
    """Replace the live status atomically; False (said at debug level) if the directory cannot be written."""
    path = runtime_dir / FILE
    try:
        runtime_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({**status, "pid": os.getpid(), "written": time.time()},
                                  ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(path)
        return True
    except OSError as err:
        log.debug("live status %s not written: %s", path, err)
        return False


def read(runtime_dir: Path) -> dict[str, Any] | None:
    """The running daemon's status, or None when no daemon runs (no file, or its pid is gone)."""
    try:
        status = json.loads((runtime_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return dict(status)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs as another user (the service user)
    return True


def sentence(status: dict[str, Any]) -> str:
    """One line a person reads in `systemctl status`: "polling 12 printers, 0 waiting, last upload 10:02"."""
    from meterbox.box.service import status_line

    problem = ("store problem: readings kept in memory" if status.get("store_error")
               else "uplink problem (see `meterbox status`)" if status.get("uplink_error") else None)
    if status.get("claimed") is False:
        problem = "waiting to be claimed" + (f"; {problem}" if problem else "")
    return status_line(int(status.get("printers") or 0), int(status.get("backlog") or 0),
                       status.get("last_upload"), paused=bool(status.get("paused")), fault=problem)
