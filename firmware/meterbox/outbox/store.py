"""The local store: one SQLite database in WAL mode, written before anything else happens.

Every message (reading, device announcement) is one row of `messages`. A row without
a row in `sent` is in the outbox; once the broker's PUBACK arrives, (seq, time) goes
into `sent` and the message becomes the transparency log (`meterbox sent`). A small
`sent` row, not an update of the message, because the SD card pays for every page
rewritten. Message ids are stored
with the row, so a retry after a crash or power cut sends the same id and the vendor
drops the duplicate.

A reading's time lives in columns (read_at, clock, mono, boot), not only in its payload:
a reading taken before the clock was synchronised is "held" until the clock syncs (then
its read_at is corrected from the monotonic clock) or until its boot has ended (then it
can only be sent marked "unsynced"). The wire payload is therefore rendered from the
row when it is sent (`Message.wire()`), and `meterbox sent` renders it the same way.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from meterbox.errors import StoreError
from meterbox.logs import log_once
from meterbox.outbox import wire
from meterbox.outbox.failures import StoreMissing, private, store_error
from meterbox.printers.reading import Device, Reading, new_id, utc_iso

log = logging.getLogger(__name__)

SCHEMA = (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")
# A store made before meter_state existed: its printers' meter baselines are found in their
# readings, once per printer (Store.meter_state); readings up to this seq predate the table.
LEGACY_KEY = "meter_state_from"
LEGACY_SCAN = 2000  # newest readings of a printer searched for a meter its newest reading lacks
# Added after the first schema; an older store gets them on open.
NEW_COLUMNS = (("read_at", "REAL"), ("clock", "TEXT"), ("mono", "REAL"), ("boot", "TEXT"), ("refused", "TEXT"))
HELD_INDEX = "CREATE INDEX IF NOT EXISTS held ON messages(seq) WHERE clock='held'"
REFUSED_INDEX = "CREATE INDEX IF NOT EXISTS refused ON messages(seq) WHERE refused IS NOT NULL"
COLUMNS = ("messages.seq, id, kind, serial, topic, payload, created,"
           " (SELECT at FROM sent WHERE sent.seq=messages.seq), read_at, clock, mono, boot")
UNSENT = "NOT EXISTS (SELECT 1 FROM sent WHERE sent.seq=messages.seq)"
SENDABLE = f"{UNSENT} AND refused IS NULL"   # a refused message waits for nothing: it is never offered
# A reading's JSON compresses to a third: fewer pages written per commit, and the SD card
# pays for every page.
ZLIB_LEVEL = 6


def encode(text: str) -> bytes:
    return zlib.compress(text.encode(), ZLIB_LEVEL)


def decode(value: bytes | str) -> str:
    """A stored payload as text; rows written before compression are text already."""
    return zlib.decompress(value).decode() if isinstance(value, bytes) else value


def _message(row: tuple[Any, ...]) -> Message:
    seq, msg_id, kind, serial, topic, payload, created, sent_at, read_at, clock, mono, boot = row
    return Message(seq, msg_id, kind, serial, topic, decode(payload), created, sent_at, read_at, clock, mono, boot)


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
    read_at: float | None = None
    clock: str | None = None
    mono: float | None = None
    boot: str | None = None

    def wire(self) -> str:
        """The exact text sent: a reading's time and clock come from the row, as corrected by now."""
        if self.kind != "reading" or self.read_at is None:
            return self.payload
        body = json.loads(self.payload)
        body["read_at"] = utc_iso(self.read_at)
        body["clock"] = "unsynced" if self.clock in (None, "held") else self.clock
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


PRINTER_REFRESH = 600.0


class Store:
    """The box's durable memory. One connection, used from the daemon's event loop thread."""

    def __init__(self, path: Path, *, check: bool = False) -> None:
        """Open (or create) the store; CHECK runs SQLite's quick_check, as the daemon does at start."""
        self.path = path
        self._polled: dict[str, tuple[tuple[str | None, str | None], float]] = {}
        self._low = 0  # no unsent message has a lower seq: the outbox scan starts here
        self.fallback: str | None = None  # why the daemon runs on this in-memory store instead of its file
        self.db = sqlite3.connect(":memory:")  # replaced below; lets close() work after a failed open
        try:
            if str(path) != ":memory:":
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                private(path)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Small pages: a commit rewrites whole pages, and the SD card pays for every byte.
            self.db.execute("PRAGMA page_size=1024")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")      # durable at COMMIT: power cuts lose nothing
            self.db.execute("PRAGMA wal_autocheckpoint=1000")
            had_readings = self._has_readings_without_meter_state()
            # One transaction: `meterbox status`, reading beside a daemon that is making its store,
            # sees all the tables or none.
            self.db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
            self._migrate()
            if had_readings:
                self.set_state(LEGACY_KEY, str(self.last_seq()))
            if check:
                result = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({result})")
        except sqlite3.Error as err:
            self.db.close()
            raise store_error(path, err, "open") from err
        except OSError as err:
            raise StoreError(f"store {path}: {err.strerror or err}; check that the state directory "
                             "exists, is writable and the disk is not full") from err

    @classmethod
    def reader(cls, path: Path) -> Store:
        """Open an existing store read-only (status, sent): creates nothing, works on a read-only card.

        Raises StoreMissing when there is no store yet.
        """
        if not path.exists():
            raise StoreMissing(f"no store at {path} yet; the daemon makes it when it first runs")
        store = cls.__new__(cls)
        store.path, store._polled, store._low = path, {}, 0
        last: sqlite3.Error | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):   # immutable: a read-only directory without -shm
            try:
                store.db = sqlite3.connect(f"file:{path}?{flags}", uri=True, isolation_level=None,
                                           check_same_thread=False, timeout=5)
                store.db.execute("SELECT 1 FROM messages LIMIT 1")
                return store
            except sqlite3.Error as err:
                last = err
                store.db.close()
                if "no such table" in str(err):   # the daemon has made the file, not yet its tables
                    raise StoreMissing(f"the store at {path} is being made; try again in a moment") from err
        assert last is not None
        raise store_error(path, last, "read")

    def _has_readings_without_meter_state(self) -> bool:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return "messages" in tables and "meter_state" not in tables and \
            self.db.execute("SELECT 1 FROM messages WHERE kind='reading' LIMIT 1").fetchone() is not None

    def _migrate(self) -> None:
        """Add the columns and index a store made by an older version lacks."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(messages)")}
        for name, kind in NEW_COLUMNS:
            if name not in have:
                self.db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")
        self.db.execute(HELD_INDEX)
        self.db.execute(REFUSED_INDEX)
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name='outbox'").fetchone():
            self.db.execute("INSERT OR IGNORE INTO sent(seq, at) SELECT seq, sent_at FROM messages"
                            " WHERE sent_at IS NOT NULL")
            self.db.execute("DROP INDEX outbox")
        # by_serial (serial, kind, seq) touched one index page per printer per commit; `latest` replaces it.
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name='by_serial'").fetchone():
            self.db.execute("INSERT OR REPLACE INTO latest(serial, seq, created) SELECT serial, max(seq), max(created)"
                            " FROM messages WHERE kind='reading' GROUP BY serial")
            self.db.execute("DROP INDEX by_serial")

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
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise store_error(self.path, err, "write") from err

    # --- writing -----------------------------------------------------------------
    def add_readings(self, box_id: str, batch: list[tuple[Device, Reading]], *, report: bool = True,
                     sent: Iterable[str] = (), meter_states: Mapping[str, dict[str, Any]] | None = None) -> None:
        """Store readings of one poll round in one durable commit (group commit saves SD writes).

        SENT are message ids the broker has acknowledged meanwhile, METER_STATES the validator's
        changed states (Validator.unsaved()): both ride in the same commit, so a state is never
        newer or older on disk than the readings it goes with.
        """
        statements: list[tuple[str, tuple[Any, ...]]] = []
        seen: dict[str, tuple[Any, ...]] = {}  # identities written earlier in this batch
        for device, reading in batch:
            statements += self._reading_statements(box_id, device, reading, report, seen)
        statements += self._sent_statements(sent, time.time())
        statements += [self._meter_state_statement(serial, state) for serial, state in (meter_states or {}).items()]
        if statements:
            self._tx(statements)

    @staticmethod
    def _meter_state_statement(serial: str, state: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        return ("INSERT INTO meter_state(serial, state) VALUES(?, ?) ON CONFLICT(serial) DO UPDATE"
                " SET state=excluded.state", (serial, json.dumps(state, separators=(",", ":"), sort_keys=True)))

    def save_meter_state(self, serial: str, state: dict[str, Any]) -> None:
        """Keep the validator's STATE of one printer (Validator.export) on its own commit."""
        self._tx([self._meter_state_statement(serial, state)])

    def meter_state(self, serial: str, *, keep: bool = True) -> dict[str, Any] | None:
        """Where validation continues after a restart: Validator.restore's input; None without history.

        "accepted" holds every meter's last accepted value: the printer's newest reading, and for
        the meters it lacks (held, missing) the value kept in the stored state. In a store from
        before meter_state, each meter comes from the newest reading that holds it (searched once
        per printer, then kept as its state unless KEEP is false: a read-only store).
        """
        row = self.db.execute("SELECT state FROM meter_state WHERE serial=?", (serial,)).fetchone()
        newest = {m["name"]: m["value"] for m in self.last_meters(serial)}
        if row is None:
            older = self._legacy_meters(serial, newest) if newest else None
            if older is None:
                return {"accepted": newest} if newest else None
            stored: dict[str, Any] = {"accepted": older}
            if keep:
                self.save_meter_state(serial, stored)
        else:
            stored = json.loads(row[0])
        # A meter in the newest reading was accepted after any state that lacked it.
        return {**stored, "accepted": {**stored.get("accepted", {}), **newest}}

    def meter_states(self) -> dict[str, dict[str, Any]]:
        """Every printer's meter_state, nothing written: the baselines a read-only store still holds."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        legacy = "meter_state" not in tables     # older than meter_state, never migrated (read-only since)
        query = "SELECT serial FROM latest" + ("" if legacy else " UNION SELECT serial FROM meter_state")
        states: dict[str, dict[str, Any]] = {}
        for (serial,) in self.db.execute(query).fetchall():
            try:
                if legacy:
                    newest = {m["name"]: m["value"] for m in self.last_meters(serial)}
                    state = {"accepted": {**self._older_meters(serial, newest, None), **newest}}
                else:
                    state = self.meter_state(serial, keep=False) or {}
            except (ValueError, KeyError, TypeError, zlib.error) as err:   # one damaged row: that printer only
                log.warning("store %s: printer %s: its meter baseline cannot be read (%s); its meter checks start "
                            "again from its next reading", self.path, serial, err)
                continue
            if state.get("accepted"):
                states[serial] = state
        return states

    def _legacy_meters(self, serial: str, newest: dict[str, int]) -> dict[str, int] | None:
        """Meters the newest reading lacks, from the newest older reading holding each; None if not a legacy store."""
        upto = self.state(LEGACY_KEY)
        if upto is None:
            return None
        return self._older_meters(serial, newest, int(upto))

    def _older_meters(self, serial: str, newest: dict[str, int], upto: int | None) -> dict[str, int]:
        """Meters NEWEST lacks, each from the newest reading (up to seq UPTO, else any) that holds it."""
        found: dict[str, int] = {}
        rows = self.db.execute("SELECT payload FROM messages WHERE seq<=? AND kind='reading' AND serial=?"
                               " ORDER BY seq DESC LIMIT ?", (upto if upto is not None else 2**62, serial, LEGACY_SCAN))
        for (payload,) in rows:
            for m in json.loads(decode(payload)).get("meters", []):
                if m["name"] not in newest and m["name"] not in found:
                    found[m["name"]] = int(m["value"])
        return found

    def _reading_statements(self, box_id: str, device: Device, reading: Reading, report: bool,
                            seen: dict[str, tuple[Any, ...]]) -> list[tuple[str, tuple[Any, ...]]]:
        now = time.time()
        statements: list[tuple[str, tuple[Any, ...]]] = []
        device = wire.fit_device(device)   # model cut to the contract's 128 characters, no control characters
        # A new printer polled twice within one group commit is still announced once.
        row = seen.get(device.serial) or self.db.execute(
            "SELECT manufacturer, model, sys_object_id, profile FROM devices WHERE serial=?",
            (device.serial,)).fetchone()
        if row is not None and row[1] and not device.model:   # a poll that named less keeps what was named
            device = replace(device, manufacturer=device.manufacturer or row[0], model=row[1])
        seen[device.serial] = (device.manufacturer, device.model, device.sys_object_id, device.profile)
        # Announced when new, and again when the box names it better (a firmware update that
        # knows more models): the vendor's books take the newest announcement.
        announce = row is None or tuple(row[:2]) != (device.manufacturer, device.model)
        if row != (device.manufacturer, device.model, device.sys_object_id, device.profile):
            # Only a changed identity is written: every page rewritten wears the SD card.
            statements.append((
                "INSERT INTO devices(serial, manufacturer, model, sys_object_id, profile, first_seen, last_seen)"
                " VALUES(?,?,?,?,?,?,?) ON CONFLICT(serial) DO UPDATE SET manufacturer=excluded.manufacturer,"
                " model=excluded.model, sys_object_id=excluded.sys_object_id, profile=excluded.profile,"
                " last_seen=excluded.last_seen",
                (device.serial, device.manufacturer, device.model, device.sys_object_id, device.profile, now, now)))
        if report and announce:
            statements.append(self._message(box_id, "device", device.serial, "devices",
                                            device.payload(), new_id(), now))
        if report:
            body, refused = wire.fit_reading(reading, box_id)
            sql, args = self._message(box_id, "reading", device.serial, "readings", body, reading.id, now, refused)
            statements.append((
                "INSERT INTO messages(id, kind, serial, topic, payload, created, refused, read_at, clock, mono, boot)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?)", (*args, reading.read_at, reading.clock, reading.mono, reading.boot)))
            statements.append((
                "INSERT INTO latest(serial, seq, created) VALUES(?, last_insert_rowid(), ?)"
                " ON CONFLICT(serial) DO UPDATE SET seq=excluded.seq, created=excluded.created",
                (device.serial, now)))
        return statements

    @staticmethod
    def _message(box_id: str, kind: str, serial: str, leaf: str, body: dict[str, Any],
                 msg_id: str, now: float, refused: str | None = None) -> tuple[str, tuple[Any, ...]]:
        """The INSERT of one message, checked against the wire contract (refused: kept, never sent)."""
        if kind == "device":
            body = {"v": 1, "id": msg_id, "box": box_id, **body}  # status bodies come complete
        if kind != "reading":   # fit_reading has checked a reading
            refused = wire.device_problem(body) if kind == "device" else wire.problem(kind, body)
        if refused:
            log_once(log, ("refused", kind, serial, refused), "%s of printer %s is kept on the box and not "
                     "sent: outside the wire contract (%s); `meterbox status` lists it",
                     kind, (wire.printable(serial) or "-")[:64], refused)
        payload = encode(json.dumps(body, separators=(",", ":"), ensure_ascii=False))
        return ("INSERT INTO messages(id, kind, serial, topic, payload, created, refused) VALUES(?,?,?,?,?,?,?)",
                (msg_id, kind, serial, f"meterbox/v1/{box_id}/{leaf}", payload, now, refused))

    def add_status(self, box_id: str, body: dict[str, Any]) -> str | None:
        """Queue a heartbeat, unless one is still waiting to go (a week's outage queues one, not 672).

        The waiting one is never replaced: it may already have left, and the transparency log
        keeps every payload that did.
        """
        if self.db.execute("SELECT 1 FROM messages WHERE kind='status' AND seq NOT IN (SELECT seq FROM sent)"
                           " AND refused IS NULL LIMIT 1").fetchone():
            return None
        msg_id = new_id()
        self._tx([self._message(box_id, "status", "", "status", {"v": 1, "id": msg_id, "box": box_id, **body},
                                msg_id, time.time())])
        return msg_id

    def mark_sent(self, ids: Iterable[str], at: float | None = None) -> int:
        """The broker has these (PUBACK): they leave the outbox and join the transparency log."""
        ids = list(ids)
        if not ids:
            return 0
        self._tx(self._sent_statements(ids, time.time() if at is None else at))
        return len(ids)

    @staticmethod
    def _sent_statements(ids: Iterable[str], at: float) -> list[tuple[str, tuple[Any, ...]]]:
        return [("INSERT OR IGNORE INTO sent(seq, at) SELECT seq, ? FROM messages WHERE id=?", (at, i))
                for i in ids]

    def settle_clock(self, *, boot: str, synced: bool, now: float, mono: float,
                     hold: float) -> tuple[int, int]:
        """Give held readings their final time; return (corrected, released as unsynced).

        Synchronised: a reading held in this boot gets read_at = now - (mono - its mono).
        A reading held in another boot can never be corrected: it is released "unsynced".
        Not synchronised for longer than HOLD: released "unsynced" rather than never sent.
        """
        held = "clock='held'"  # a held reading is never offered, so never sent
        with_cursor = self.db.execute
        if with_cursor(f"SELECT 1 FROM messages WHERE {held} LIMIT 1").fetchone() is None:
            return 0, 0
        other = int(with_cursor(f"SELECT count(*) FROM messages WHERE {held} AND boot IS NOT ?",
                                (boot,)).fetchone()[0])
        if synced:
            mine = int(with_cursor(f"SELECT count(*) FROM messages WHERE {held} AND boot=?",
                                   (boot,)).fetchone()[0])
            expired = 0
        else:
            mine = 0
            expired = int(with_cursor(f"SELECT count(*) FROM messages WHERE {held} AND boot=? AND ?-mono>?",
                                      (boot, mono, hold)).fetchone()[0])
        statements: list[tuple[str, tuple[Any, ...]]] = []
        if other:
            statements.append((f"UPDATE messages SET clock='unsynced' WHERE {held} AND boot IS NOT ?", (boot,)))
        if mine:
            statements.append((f"UPDATE messages SET read_at=?-(?-mono), clock='corrected' WHERE {held} AND boot=?",
                               (now, mono, boot)))
        if expired:
            statements.append((f"UPDATE messages SET clock='unsynced' WHERE {held} AND boot=? AND ?-mono>?",
                               (boot, mono, hold)))
        if statements:
            self._tx(statements)
        return mine, other + expired

    def withhold(self, seqs: Iterable[int], reason: str) -> None:
        """Keep these messages on the box for good (the office no longer lets their printer be reported)."""
        self._tx([("UPDATE messages SET refused=? WHERE seq=? AND refused IS NULL", (reason, seq)) for seq in seqs])

    def held(self) -> int:
        """Readings waiting for the clock to sync."""
        return int(self.db.execute("SELECT count(*) FROM messages WHERE clock='held'")
                   .fetchone()[0])

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
            sql = ("INSERT INTO printers(address, serial, last_poll, last_error) VALUES(?,?,?,?)"
                   " ON CONFLICT(address) DO UPDATE SET serial=coalesce(excluded.serial, printers.serial),"
                   " last_poll=excluded.last_poll, last_error=excluded.last_error")
            self._tx([(sql, (address, serial, now, error))])

    def forget_address(self, address: str) -> None:
        """The printer at ADDRESS moved (discovery): `meterbox status` shows it only where it is now."""
        self._polled.pop(address, None)
        self._tx([("DELETE FROM printers WHERE address=?", (address,))])

    def set_state(self, key: str, value: str | None) -> None:
        if value is None:
            self._tx([("DELETE FROM state WHERE key=?", (key,))])
        else:
            self._tx([("INSERT OR REPLACE INTO state(key, value) VALUES(?, ?)", (key, value))])

    # --- reading -----------------------------------------------------------------
    def state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def pending(self, limit: int = 100, exclude: Iterable[str] = (), fresh_after: int | None = None,
                fresh_share: float = 0.25) -> list[Message]:
        """Outbox rows to send now: the backlog oldest first, held readings never.

        With FRESH_AFTER (the last seq stored when the connection came up), part of the window
        (FRESH_SHARE, at least one) goes to rows stored since, oldest of those first, so a long
        backlog does not keep today's readings (and toner alerts) waiting for hours. The
        backlog itself, and the fresh rows among themselves, stay in order.
        """
        skip = set(exclude)
        self._advance_low()
        if fresh_after is None:
            return self._outbox(self._low, None, limit, skip)
        fresh = self._outbox(max(self._low, fresh_after + 1), None, limit, skip)
        backlog = self._outbox(self._low, fresh_after, limit, skip)
        take_fresh = min(len(fresh), max(1, int(limit * fresh_share))) if backlog else len(fresh)
        take_backlog = min(len(backlog), limit - take_fresh)
        take_fresh = min(len(fresh), limit - take_backlog)
        return backlog[:take_backlog] + fresh[:take_fresh]

    def _outbox(self, low: int, high: int | None, limit: int, skip: set[str]) -> list[Message]:
        """Unsent, sendable rows with low <= seq (<= high), oldest first; one range, so SQLite seeks to it."""
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM messages WHERE messages.seq BETWEEN ? AND ? AND {SENDABLE}"
            " AND clock IS NOT 'held' ORDER BY messages.seq LIMIT ?",
            (low, high if high is not None else 2**62, limit + len(skip))).fetchall()
        return [m for m in (_message(r) for r in rows) if m.id not in skip and self._fits(m)][:limit]

    def _fits(self, message: Message) -> bool:
        """Checked again as it leaves: a row stored before the check (an older version) may not fit."""
        why = wire.problem(message.kind, json.loads(message.wire())) if message.kind in wire.SCHEMAS else None
        if why:
            log.warning("%s %s of printer %s is not sent: outside the wire contract (%s); it stays on the box",
                        message.kind, message.id, (wire.printable(message.serial) or "-")[:64], why)
            self._tx([("UPDATE messages SET refused=? WHERE seq=?", (why, message.seq))])
        return why is None

    def _advance_low(self) -> None:
        """Move the outbox's start past messages sent meanwhile (each row is passed once)."""
        row = self.db.execute(f"SELECT seq FROM messages WHERE seq >= ? AND {SENDABLE} ORDER BY seq LIMIT 1",
                              (self._low,)).fetchone()
        self._low = row[0] if row else self.last_seq() + 1

    def last_seq(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])

    def size(self) -> int:
        """Bytes in use (pages not on the free list): what [store] max_size bounds."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def last_upload(self) -> float | None:
        row = self.db.execute("SELECT max(at) FROM sent").fetchone()
        return row[0] if row else None

    def backlog(self) -> int:
        """Messages not yet delivered (every `sent` row has its message: compaction removes both); refused ones aside."""
        return int(self.db.execute("SELECT (SELECT count(*) FROM messages) - (SELECT count(*) FROM sent)"
                                   " - (SELECT count(*) FROM messages WHERE refused IS NOT NULL)").fetchone()[0])

    def refused(self) -> list[dict[str, Any]]:
        """Messages kept on the box because they are outside the wire contract, by printer and reason."""
        rows = self.db.execute("SELECT serial, kind, refused, count(*), max(created) FROM messages"
                               " WHERE refused IS NOT NULL GROUP BY serial, kind, refused ORDER BY 5 DESC LIMIT 50")
        return [dict(zip(("serial", "kind", "reason", "count", "last"), r)) for r in rows]

    def sent(self, limit: int = 50, serial: str | None = None) -> list[Message]:
        """The transparency log, newest first."""
        sql = f"SELECT {COLUMNS} FROM sent JOIN messages ON messages.seq=sent.seq"
        args: tuple[Any, ...] = ()
        if serial:
            sql += " WHERE serial=?"
            args = (serial,)
        rows = self.db.execute(sql + " ORDER BY sent.at DESC, sent.seq DESC LIMIT ?", (*args, limit))
        return [_message(r) for r in rows]

    def messages(self, kind: str | None = None) -> Iterator[Message]:
        sql = f"SELECT {COLUMNS} FROM messages" + (" WHERE kind=?" if kind else "") + " ORDER BY seq"
        return (_message(r) for r in self.db.execute(sql, (kind,) if kind else ()))

    def last_meters(self, serial: str) -> list[dict[str, Any]]:
        """Meters of the printer's newest stored reading: where validation starts after a restart."""
        row = self.db.execute("SELECT payload FROM messages WHERE seq=(SELECT seq FROM latest WHERE serial=?)",
                              (serial,)).fetchone()
        return list(json.loads(decode(row[0])).get("meters", [])) if row else []

    def printers(self) -> list[dict[str, Any]]:
        """Every address polled, with its printer's identity and last reading time."""
        rows = self.db.execute(
            "SELECT p.address, p.serial, d.manufacturer, d.model,"
            " CASE WHEN p.last_error IS NULL THEN max(p.last_poll, coalesce((SELECT created FROM latest l"
            "  WHERE l.serial=p.serial), 0)) ELSE p.last_poll END, p.last_ok, p.last_error,"
            " (SELECT created FROM latest l WHERE l.serial=p.serial)"
            " FROM printers p LEFT JOIN devices d ON d.serial=p.serial ORDER BY p.address")
        keys = ("address", "serial", "manufacturer", "model", "last_poll", "last_ok", "last_error", "last_reading")
        return [dict(zip(keys, r)) for r in rows]
