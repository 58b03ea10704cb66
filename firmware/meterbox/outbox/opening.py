"""The daemon's store, opened so that the box goes on whatever the card does.

A damaged file is moved aside (kept for `meterbox doctor --recover`) and a new store
started; a store that cannot be written (read-only or full card, missing directory)
becomes an in-memory store seeded with the meter baselines the card still holds.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from meterbox.errors import StoreError
from meterbox.logs import plural
from meterbox.outbox.failures import StoreCorrupt
from meterbox.outbox.store import Store

log = logging.getLogger(__name__)


def open_store(path: Path) -> Store:
    """The daemon's store: a damaged file is moved aside (kept for recovery) and a new one started.

    A store that cannot be opened for another reason (read-only, missing directory) becomes an
    in-memory store, so polling and uploading go on; the error says so once.
    """
    try:
        return Store(path, check=True)
    except StoreCorrupt as err:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error("%s", err)
        try:
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
        except OSError as move:
            log.error("store %s: cannot move the damaged file aside (%s); keeping readings in memory only",
                      path, move.strerror or move)
            memory = Store(Path(":memory:"))
            memory.fallback = f"{err}; the damaged file cannot be moved aside ({move.strerror or move})"
            return memory
        log.error("store %s: the damaged file was moved to %s and a new store started; to send the "
                  "readings it still holds: meterbox doctor --recover %s", path, aside, aside)
        return open_store(path)
    except StoreError as err:
        log.error("%s; readings are kept in memory only (lost on a power cut) until this is fixed "
                  "and the service restarted", err)
        return _memory_store(path, str(err))


def _memory_store(path: Path, why: str) -> Store:
    """An in-memory store that starts from the meter baselines the unwritable store at PATH still holds.

    Without them a meter held back before the restart (a bogus 0) would be taken as the new
    baseline, and the next true value billed as a jump from it.
    """
    memory = Store(Path(":memory:"))
    memory.fallback = why
    try:
        disk = Store.reader(path)
    except StoreError:          # no store yet, or not even readable: nothing to start from
        return memory
    try:
        states = disk.meter_states()
    except (sqlite3.Error, StoreError) as err:
        log.warning("store %s: its meter baselines cannot be read (%s); meter checks start again from "
                    "each printer's next reading", path, err)
        return memory
    finally:
        disk.close()
    for serial, state in states.items():
        memory.save_meter_state(serial, state)
    if states:
        log.info("store %s: the meter baselines of %s were read from it; meter checks go on from them",
                 path, plural(len(states), "printer"))
    return memory
