"""What went wrong with the store file, in one sentence a technician can act on; and its permissions.

SQLite's own messages ("attempt to write a readonly database") name neither the file nor
what to do; the daemon and `meterbox status`/`doctor` show these instead.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from meterbox.errors import StoreError

CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


class StoreMissing(StoreError):
    """There is no store yet (the daemon has not run)."""

    code = "store-missing"


class StoreCorrupt(StoreError):
    """The database file is damaged: the daemon moves it aside and starts anew."""

    code = "store-corrupt"


def store_error(path: Path | str, err: sqlite3.Error, doing: str) -> StoreError:
    """One sentence for each way SQLite fails, saying what to do."""
    name = getattr(err, "sqlite_errorname", "")
    if name in CORRUPT or "malformed" in str(err) or "not a database" in str(err):
        return StoreCorrupt(f"store {path} is damaged ({err}); the daemon moves it aside and starts a new "
                            "one; see `meterbox doctor` for how to recover its unsent readings")
    kept = "; readings are kept in memory until " if doing != "open" else ""
    if name == "SQLITE_FULL":
        return StoreError(f"store {path}: the disk is full{kept + 'space is freed' if kept else ''} "
                          "(free space: `df -h`, then `meterbox doctor`)")
    if name in ("SQLITE_READONLY", "SQLITE_READONLY_DIRECTORY") or "readonly" in str(err) or _read_only(path):
        return StoreError(f"store {path}: the file system is read-only{kept + 'it is writable again' if kept else ''}"
                          " (a worn SD card turns read-only: check it with `meterbox doctor`)")
    if name == "SQLITE_CANTOPEN":
        return StoreError(f"store {path}: cannot open it ({err}); check that the state directory exists "
                          "and is writable (`meterbox doctor`)")
    return StoreError(f"store {path}: cannot {doing} ({err}); nothing was changed; "
                      "check free space (`df -h`) and run `meterbox doctor`")


def private(path: Path) -> None:
    """The store 0600, made so before SQLite opens it (the caller makes a missing state directory 0700).

    SQLite gives the -wal and -shm files it creates the store file's own mode, so creating the
    store 0600 keeps all three readable by the service user only; a store made by an older
    version with wider modes is narrowed. An existing state directory is left as it is (it may
    be shared; `meterbox doctor` warns). Where this fails (read-only card), SQLite's own open
    says what is wrong.
    """
    try:
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            _narrow(name, 0o600)
    except OSError:
        pass


def _narrow(path: Path, most: int) -> None:
    """Take away the permission bits of PATH beyond MOST (a missing file is left alone)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & ~most:
        path.chmod(mode & most)


def _read_only(path: Path | str) -> bool:
    """True when the store's directory is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(Path(path).parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False
