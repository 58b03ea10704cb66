"""`meterbox doctor --recover FILE`: the unsent readings a damaged store still holds go back into the outbox.

The damaged file is read page by page (meterbox.outbox.sqlitefile), not through SQLite: SQLite
refuses a file whose header is overwritten and stops at the first broken b-tree page, and
its `.recover` (sqlite3 CLI, sqlite_dbpage) needs an intact header and a CLI the box does not
carry. A row of `messages` is known by its shape (an id of 26 ULID characters, a kind, a
topic under meterbox/v1/, a payload that decodes to JSON carrying the same id), wherever it
is: on a page that nothing points to any more, after a truncation, in the WAL file beside
it. A row of `sent` (or a sent_at) marks a message as delivered; free-list pages (old,
deleted rows) are skipped when the header still names them.

Every unsent reading (and printer announcement) found goes into the live store with its
original id, so the vendor drops a resend; an id the live store has already is skipped, so
running it twice adds nothing twice. The scan is bounded in time (proportional to the file's
size, with a hard cap) and shows its progress on a terminal.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from meterbox.errors import MeterboxError
from meterbox.outbox.sqlitefile import NotSqlite, SqliteFile, Value

KINDS = ("reading", "device")   # a status heartbeat from a dead store is stale: a new one is queued anyway
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
FIELDS = ("id", "kind", "serial", "topic", "payload", "created", "read_at", "clock", "mono", "boot", "refused")
SECONDS_PER_MIB = 2.0     # a Raspberry Pi scans a MiB of 1 KiB pages in well under a second
BASE_SECONDS = 20.0
HARD_CAP = 300.0


class RecoverRefused(MeterboxError):
    """The file given to `doctor --recover` is not a meterbox store (or is the live one)."""

    code = "recover"


@dataclass
class Row:
    """One message found in the damaged file."""

    seq: int
    values: tuple[Value, ...]     # in FIELDS order
    sent: bool

    @property
    def id(self) -> str:
        return str(self.values[0])

    @property
    def kind(self) -> str:
        return str(self.values[1])


@dataclass
class Scan:
    """What a damaged file holds."""

    rows: dict[str, Row] = field(default_factory=dict)
    sent: set[int] = field(default_factory=set)    # seqs with a `sent` row
    tables: set[str] = field(default_factory=set)  # names in sqlite_master that could be read
    unreadable: int = 0
    pages: int = 0
    stopped_at: int | None = None                  # the page where the time ran out

    def unsent(self) -> list[Row]:
        """Unsent readings and announcements, oldest first."""
        return sorted((r for r in self.rows.values() if not r.sent and r.seq not in self.sent
                       and r.kind in KINDS), key=lambda r: r.seq)


@dataclass(frozen=True)
class Result:
    recovered: int    # messages: readings and printer announcements
    known: int        # readings the live store has already
    unreadable: int
    devices: int
    stopped: str | None

    def __str__(self) -> str:
        text = (f"{self.recovered - self.devices} unsent reading{_s(self.recovered - self.devices)} recovered, "
                f"{self.known} already there, {self.unreadable} page{_s(self.unreadable)} unreadable")
        if self.devices:
            text += f"; {self.devices} printer announcement{_s(self.devices)} too"
        return text + (f"; {self.stopped}" if self.stopped else "")


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def time_budget(size: int) -> float:
    """Seconds the scan may take: proportional to the file, never more than HARD_CAP."""
    return min(HARD_CAP, BASE_SECONDS + SECONDS_PER_MIB * size / 2**20)


def scan(path: Path, *, budget: float | None = None, progress: TextIO | None = None) -> Scan:
    """Read every page of PATH (and its WAL) for messages; RecoverRefused if it is not a meterbox store."""
    if not path.is_file():
        raise RecoverRefused(f"{path} is not a file; give the damaged store moved aside "
                             "(meterbox.db.corrupt-<time> in the state directory)")
    try:
        db = SqliteFile(path)
    except NotSqlite:
        raise RecoverRefused(f"{path} is not a SQLite file (no SQLite header, no database pages); "
                             "nothing was changed") from None
    except OSError as err:
        raise RecoverRefused(f"{path}: cannot read it ({err.strerror or err})") from err
    with db:
        found = _scan_pages(db, time.monotonic() + (budget if budget is not None else time_budget(db.size)),
                            _Progress(progress))
    if "messages" not in found.tables and not found.rows:
        raise RecoverRefused(f"{path} is a SQLite file but not a meterbox store (no messages table, no "
                             "meterbox messages in it); nothing was changed")
    return found


def _scan_pages(db: SqliteFile, deadline: float, progress: _Progress) -> Scan:
    found = Scan(pages=db.count)
    free = db.free_pages(db.count)
    bad: list[int] = []
    for n in range(1, db.count + 1):
        if n % 256 == 0:
            if time.monotonic() > deadline:
                found.stopped_at = n
                break
            progress.show(n, db.count, found)
        if n in free:
            continue
        cells = db.table_cells(n)
        if cells is None:
            if db.page_type(n) is None:
                bad.append(n)
            continue
        for cell in cells:
            if cell is not None:
                _classify(cell[0], cell[1], found)
    progress.done()
    missing = (db.declared - db.count) if db.declared and db.declared > db.count else 0
    found.unreadable = len(set(bad) - db.overflow) + missing
    return found


def _classify(rowid: int, values: list[Value], found: Scan) -> None:
    """A record of `messages`, `sent` or `sqlite_master`, told apart by its shape; others are ignored."""
    if len(values) == 2 and values[0] is None and isinstance(values[1], (int, float)):
        found.sent.add(rowid)                                  # sent(seq INTEGER PRIMARY KEY, at REAL)
    elif len(values) == 5 and values[0] in ("table", "index") and isinstance(values[1], str):
        found.tables.add(values[1])                            # sqlite_master
    elif 8 <= len(values) <= 13 and (row := _message(rowid, values)) is not None:
        old = found.rows.get(row.id)   # two copies: an old page the header no longer names as free
        if old is not None:
            row.sent |= old.sent
            if row.values[7] == "held" and old.values[7] != "held":
                row.values = old.values   # keep the copy whose time was settled
        found.rows[row.id] = row


def _message(rowid: int, values: list[Value]) -> Row | None:
    """A `messages` row (seq is the rowid; older stores lack the last columns), or None.

    A row refused by the wire contract comes back refused: it stays on the box, as before.
    """
    seq, msg_id, kind, serial, topic, payload, created, sent_at, read_at, clock, mono, boot, refused = (
        values + [None] * (13 - len(values)))
    if seq is not None or not isinstance(msg_id, str) or not ULID.fullmatch(msg_id):
        return None
    if kind not in ("reading", "device", "status") or not isinstance(serial, str):
        return None
    if not isinstance(topic, str) or not topic.startswith("meterbox/v1/"):
        return None
    if not isinstance(created, (int, float)) or not isinstance(payload, (bytes, str)):
        return None
    try:  # a payload that does not decode would stop the uplink: only a whole one comes back
        text = zlib.decompress(payload).decode() if isinstance(payload, bytes) else payload
        if json.loads(text).get("id") != msg_id:
            return None
    except (zlib.error, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return Row(rowid, (msg_id, kind, serial, topic, payload, created, read_at, clock, mono, boot, refused),
               sent_at is not None)


def recover(live_path: Path, damaged: Path, *, budget: float | None = None,
            progress: TextIO | None = None) -> Result:
    """Put the unsent messages DAMAGED still holds into the store at LIVE_PATH; say what was done."""
    from meterbox.outbox.store import Store

    if live_path.exists() and damaged.exists() and live_path.resolve() == damaged.resolve():
        raise RecoverRefused(f"{damaged} is the live store; give the damaged copy the service moved "
                             "aside (meterbox.db.corrupt-<time>)")
    found = scan(damaged, budget=budget, progress=progress)
    rows = found.unsent()
    live = Store(live_path)
    try:
        have = set()
        for start in range(0, len(rows), 500):
            ids = [r.id for r in rows[start:start + 500]]
            have |= {str(i) for (i,) in live.db.execute(
                f"SELECT id FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)}
        new = [r for r in rows if r.id not in have]
        insert = (f"INSERT OR IGNORE INTO messages({', '.join(FIELDS)}) "
                  f"VALUES({', '.join('?' * len(FIELDS))})")
        for start in range(0, len(new), 500):
            live._tx([(insert, r.values) for r in new[start:start + 500]])
    finally:
        live.close()
    stopped = None
    if found.stopped_at is not None:
        limit = time_budget(damaged.stat().st_size) if budget is None else budget
        stopped = (f"the time limit ({limit:.0f} s) stopped the scan at page {found.stopped_at} of "
                   f"{found.pages}: the rest of the file was not read")
    known = sum(r.kind == "reading" for r in rows if r.id in have)
    return Result(len(new), known, found.unreadable, sum(r.kind == "device" for r in new), stopped)


class _Progress:
    """One line, rewritten in place, on a terminal only."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out if out is not None and out.isatty() else None
        self.last = 0.0

    def show(self, page: int, pages: int, found: Scan) -> None:
        if self.out is None or time.monotonic() - self.last < 0.25:
            return
        self.last = time.monotonic()
        self.out.write(f"\rreading page {page} of {pages} ({100 * page // pages} %): "
                       f"{len(found.rows)} messages found")
        self.out.flush()

    def done(self) -> None:
        if self.out is not None and self.last:
            self.out.write("\n")
            self.out.flush()

