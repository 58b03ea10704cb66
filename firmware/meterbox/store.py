"""The local store: one SQLite database in WAL mode, written before anything else happens.

Every message (reading, device announcement) is one row of `messages`. A row with
`sent_at IS NULL` is in the outbox; once the broker's PUBACK arrives it gets its
`sent_at` and, unchanged, becomes the transparency log (`meterbox sent`): the exact
bytes that left the box. Message ids are stored with the row, so a retry after a
crash or power cut sends the same id and the vendor drops the duplicate.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from meterbox.errors import StoreError
from meterbox.reading import Device, Reading, new_id

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,            -- reading, device
    serial    TEXT NOT NULL,
    topic     TEXT NOT NULL,
    payload   TEXT NOT NULL,
    created   REAL NOT NULL,
    sent_at   REAL
);
CREATE INDEX IF NOT EXISTS outbox ON messages(seq) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS by_serial ON messages(serial, kind, seq);
CREATE TABLE IF NOT EXISTS devices (
    serial        TEXT PRIMARY KEY,
    manufacturer  TEXT,
    model         TEXT,
    sys_object_id TEXT,
    profile       TEXT,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS printers (   -- local only: addresses never leave the box
    address    TEXT PRIMARY KEY,
    serial     TEXT,
    last_poll  REAL,
    last_ok    REAL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Message:
    seq: int
    id: str
    kind: str
    serial: str
    topic: str
    payload: str
    created: float
    sent_at: float | None


PRINTER_REFRESH = 600.0


class Store:
    """The box's durable memory. One connection, used from the daemon's event loop thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._polled: dict[str, tuple[tuple[str | None, str | None], float]] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Small pages: a commit rewrites whole pages, and the SD card pays for every byte.
            self.db.execute("PRAGMA page_size=1024")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")      # durable at COMMIT: power cuts lose nothing
            self.db.execute("PRAGMA wal_autocheckpoint=1000")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"store {path}: {err}; run `meterbox doctor` "
                             "(a corrupt file is moved aside and a new store started)") from err
        except OSError as err:
            raise StoreError(f"store {path}: {err.strerror or err}; check that the state directory "
                             "exists, is writable and the disk is not full") from err

    def close(self) -> None:
        self.db.close()

    def _tx(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        """Run statements in one transaction: all of them are durable, or none."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                self.db.execute(sql, args)
            self.db.execute("COMMIT")
        except sqlite3.Error as err:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"store {self.path}: cannot write ({err}); nothing was changed; "
                             "check free space (`df -h`) and run `meterbox doctor`") from err

    # --- writing -----------------------------------------------------------------
    def add_reading(self, box_id: str, device: Device, reading: Reading, *, report: bool = True) -> None:
        """Store a reading (and the device's one-time announcement) in one durable commit."""
        self.add_readings(box_id, [(device, reading)], report=report)

    def add_readings(self, box_id: str, batch: list[tuple[Device, Reading]], *, report: bool = True) -> None:
        """Store readings of one poll round in one durable commit (group commit saves SD writes)."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for device, reading in batch:
            statements += self._reading_statements(box_id, device, reading, report)
        if statements:
            self._tx(statements)

    def _reading_statements(self, box_id: str, device: Device, reading: Reading,
                            report: bool) -> list[tuple[str, tuple[Any, ...]]]:
        now = time.time()
        statements: list[tuple[str, tuple[Any, ...]]] = []
        row = self.db.execute("SELECT manufacturer, model, sys_object_id, profile FROM devices WHERE serial=?",
                              (device.serial,)).fetchone()
        known = row is not None
        if row != (device.manufacturer, device.model, device.sys_object_id, device.profile):
            # Only a changed identity is written: every page rewritten wears the SD card.
            statements.append((
                "INSERT INTO devices(serial, manufacturer, model, sys_object_id, profile, first_seen, last_seen)"
                " VALUES(?,?,?,?,?,?,?) ON CONFLICT(serial) DO UPDATE SET manufacturer=excluded.manufacturer,"
                " model=excluded.model, sys_object_id=excluded.sys_object_id, profile=excluded.profile,"
                " last_seen=excluded.last_seen",
                (device.serial, device.manufacturer, device.model, device.sys_object_id, device.profile, now, now)))
        if report and not known:
            statements.append(self._message(box_id, "device", device.serial, "devices",
                                            device.payload(), new_id(), now))
        if report:
            statements.append(self._message(box_id, "reading", device.serial, "readings",
                                            reading.payload(box_id), reading.id, now))
        return statements

    @staticmethod
    def _message(box_id: str, kind: str, serial: str, leaf: str, body: dict[str, Any],
                 msg_id: str, now: float) -> tuple[str, tuple[Any, ...]]:
        if kind == "device":
            body = {"v": 1, "id": msg_id, "box": box_id, **body}
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return ("INSERT INTO messages(id, kind, serial, topic, payload, created) VALUES(?,?,?,?,?,?)",
                (msg_id, kind, serial, f"meterbox/v1/{box_id}/{leaf}", payload, now))

    def mark_sent(self, ids: Iterable[str], at: float | None = None) -> int:
        """The broker has these (PUBACK): they leave the outbox and join the transparency log."""
        ids = list(ids)
        if not ids:
            return 0
        at = time.time() if at is None else at
        self._tx([("UPDATE messages SET sent_at=? WHERE id=? AND sent_at IS NULL", (at, i)) for i in ids])
        return len(ids)

    def printer_polled(self, address: str, serial: str | None, error: str | None) -> None:
        """Remember the last poll of an address, for `meterbox status` (addresses stay local).

        Written when the result changes, else at most every PRINTER_REFRESH seconds: status
        takes the time of a good poll from the printer's last reading anyway.
        """
        now = time.time()
        last = self._polled.get(address)
        if last and last[0] == (serial, error) and now - last[1] < PRINTER_REFRESH:
            return
        self._polled[address] = ((serial, error), now)
        if error is None:
            sql = ("INSERT INTO printers(address, serial, last_poll, last_ok, last_error) VALUES(?,?,?,?,NULL)"
                   " ON CONFLICT(address) DO UPDATE SET serial=excluded.serial, last_poll=excluded.last_poll,"
                   " last_ok=excluded.last_ok, last_error=NULL")
            self._tx([(sql, (address, serial, now, now))])
        else:
            sql = ("INSERT INTO printers(address, last_poll, last_error) VALUES(?,?,?)"
                   " ON CONFLICT(address) DO UPDATE SET last_poll=excluded.last_poll, last_error=excluded.last_error")
            self._tx([(sql, (address, now, error))])

    def set_state(self, key: str, value: str | None) -> None:
        if value is None:
            self._tx([("DELETE FROM state WHERE key=?", (key,))])
        else:
            self._tx([("INSERT OR REPLACE INTO state(key, value) VALUES(?, ?)", (key, value))])

    # --- reading -----------------------------------------------------------------
    def state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def pending(self, limit: int = 100, exclude: Iterable[str] = ()) -> list[Message]:
        """Outbox rows, oldest first."""
        skip = set(exclude)
        rows = self.db.execute(
            "SELECT * FROM messages WHERE sent_at IS NULL ORDER BY seq LIMIT ?", (limit + len(skip),))
        return [m for m in (Message(*r) for r in rows) if m.id not in skip][:limit]

    def last_upload(self) -> float | None:
        row = self.db.execute("SELECT max(sent_at) FROM messages WHERE sent_at IS NOT NULL").fetchone()
        return row[0] if row else None

    def backlog(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM messages WHERE sent_at IS NULL").fetchone()[0])

    def sent(self, limit: int = 50, serial: str | None = None) -> list[Message]:
        """The transparency log, newest first."""
        sql = "SELECT * FROM messages WHERE sent_at IS NOT NULL"
        args: tuple[Any, ...] = ()
        if serial:
            sql += " AND serial=?"
            args = (serial,)
        rows = self.db.execute(sql + " ORDER BY sent_at DESC, seq DESC LIMIT ?", (*args, limit))
        return [Message(*r) for r in rows]

    def messages(self, kind: str | None = None) -> Iterator[Message]:
        sql = f"SELECT {COLUMNS} FROM messages" + (" WHERE kind=?" if kind else "") + " ORDER BY seq"
        return (Message(*r) for r in self.db.execute(sql, (kind,) if kind else ()))

    def last_meters(self, serial: str) -> list[dict[str, Any]]:
        """Meters of the printer's newest stored reading: where validation starts after a restart."""
        row = self.db.execute("SELECT payload FROM messages WHERE serial=? AND kind='reading'"
                              " ORDER BY seq DESC LIMIT 1", (serial,)).fetchone()
        return list(json.loads(row[0]).get("meters", [])) if row else []

    def printers(self) -> list[dict[str, Any]]:
        """Every address polled, with its printer's identity and last reading time."""
        rows = self.db.execute(
            "SELECT p.address, p.serial, d.manufacturer, d.model,"
            " CASE WHEN p.last_error IS NULL THEN max(p.last_poll, coalesce((SELECT max(created) FROM messages m"
            "  WHERE m.serial=p.serial AND m.kind='reading'), 0)) ELSE p.last_poll END, p.last_ok, p.last_error,"
            " (SELECT max(created) FROM messages m WHERE m.serial=p.serial AND m.kind='reading')"
            " FROM printers p LEFT JOIN devices d ON d.serial=p.serial ORDER BY p.address")
        keys = ("address", "serial", "manufacturer", "model", "last_poll", "last_ok", "last_error", "last_reading")
        return [dict(zip(keys, r)) for r in rows]
