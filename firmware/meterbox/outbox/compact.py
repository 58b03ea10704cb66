"""Keeping the store within [store] max_size: the least billing-relevant data goes first.

Meters are lifetime counters, so the latest value of each meter carries the bill; the
readings in between only say when the pages were printed. When the store is over its
limit, it is compacted down to TARGET of the limit. What goes, in order of relevance,
each oldest first and only as far as needed:

1. sent messages: the local transparency log of what the vendor already has;
2. supplies of intermediate readings: an unsent reading that is not its printer's latest
   loses its supplies levels (the latest reading still has them); a reading left with no
   meters at all (supplies-only) is removed;
3. intermediate readings beyond one per printer per day (the day's last one is kept);
4. older readings of a printer.

The work is planned before anything is written: deletions (cheap) run first, and a
payload is rewritten (stage 2, the costly part on an SD card) only if no later stage
deletes its row. Never removed: unsent device announcements, rows in flight, and for every
printer the latest reading holding each of its meters. It runs on the store's own thread
(outbox/worker.py), in small transactions, and stops between two of them when asked.
One log line per compaction says what went, with counts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from meterbox.outbox.store import UNSENT, Store, decode, encode
from meterbox.printers.reading import utc_iso

log = logging.getLogger(__name__)

TARGET = 0.8    # compact down to this share of max_size, so compaction is rare
CHUNK = 200     # rows per transaction: a commit in between is never kept waiting long
ROW_COST = 40   # bytes a row costs beyond its payload (record header, index entries), for planning
STRIP_YIELD = 2  # stripping frees less than the bytes it removes: whole cells stay on 1 KiB pages
ROUNDS = 3

SENT = "sent messages (transparency log)"
STRIPPED = "intermediate readings stripped of supplies"
SUPPLIES_ONLY = "supplies-only intermediate readings removed"
PER_DAY = "intermediate readings beyond one per printer per day"
OLDER = "older readings"


@dataclass
class Compaction:
    """What one compaction did, for its single log line."""

    before: int
    after: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)
    stopped: bool = False

    def note(self, stage: str, count: int, oldest: float | None) -> None:
        if count:
            self.counts[stage] = self.counts.get(stage, 0) + count
            if oldest is not None:
                self.oldest[stage] = min(oldest, self.oldest.get(stage, oldest))

    def __str__(self) -> str:
        parts = [f"{n:,} {stage}" + (f" (oldest {utc_iso(self.oldest[stage])})" if stage in self.oldest else "")
                 for stage, n in self.counts.items()]
        return ", ".join(parts) or "nothing (every row left is a meter's latest reading or in flight)"


# A candidate row: (seq, serial, time, bytes, has meters, bytes stripping its supplies saves).
# Plain tuples of atoms, not objects: a full store has 100,000 of them, and tuples of atoms are
# untracked by the garbage collector, whose full passes would otherwise stall the event loop.
_Row = tuple[int, str, float, int, bool, int]
_NAME = re.compile(r'"name":"([^"]*)"')


def compact(store: Store, max_bytes: int, protect: Iterable[str] = (),
            stop: Callable[[], bool] = lambda: False) -> Compaction | None:
    """Compact STORE if it is over MAX_BYTES; None if there was no need. PROTECT: ids in flight."""
    before = store.size()
    if before <= max_bytes:
        return None
    goal = int(max_bytes * TARGET)
    result = Compaction(before)
    _delete(store, _sent_rows(store), SENT, result, goal, stop)
    for _ in range(ROUNDS):  # a plan's byte estimate can be off; a second plan then deletes more
        if store.size() <= goal or stop():
            break
        deletions, strips = _plan(store, set(protect), store.size() - goal)
        if not deletions and not strips:
            break
        for stage, rows in deletions.items():
            _delete(store, rows, stage, result, None, stop)
        _strip(store, strips, result, stop)
    if store.size() > max_bytes and result.counts and not stop():
        store.db.execute("VACUUM")  # scattered deletes leave part-filled pages; rare, so worth a rewrite
    result.stopped = stop()
    result.after = store.size()
    log.warning("store full (%s, limit %s): compacted %s; now %s; every meter's latest reading is kept%s",
                _mb(before), _mb(max_bytes), result, _mb(result.after),
                " (stopped early: the daemon is stopping)" if result.stopped else "")
    return result


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _sent_rows(store: Store) -> list[tuple[int, float]]:
    """Sent messages, oldest first, except each printer's latest reading (validation starts there)."""
    return [(int(seq), float(at)) for seq, at in store.db.execute(
        "SELECT seq, created FROM messages WHERE seq IN (SELECT seq FROM sent)"
        " AND seq NOT IN (SELECT seq FROM latest) ORDER BY seq")]


def _scan(store: Store, keep: set[str]) -> tuple[list[_Row], set[int]]:
    """One pass over the readings: unsent candidates (oldest first), and the seqs that must stay
    (per printer its latest reading and the latest one holding each meter)."""
    rows: list[_Row] = []
    latest: dict[tuple[str, str], int] = {}
    newest: dict[str, int] = {}
    for seq, msg_id, serial, at, payload, sent in store.db.execute(
            "SELECT seq, id, serial, coalesce(read_at, created), payload,"
            f" NOT {UNSENT} FROM messages WHERE kind='reading' ORDER BY seq"):
        text = decode(payload)
        meters, _, supplies = text.partition(',"supplies":')
        names = _NAME.findall(meters[meters.find('"meters":'):])
        newest[serial] = seq
        for name in names:
            latest[(serial, name)] = seq
        if sent or msg_id in keep:
            continue
        gain = 0 if supplies.startswith("[]") else \
            len(payload) * len(supplies) // max(len(text), 1) // STRIP_YIELD
        rows.append((seq, serial, float(at), len(payload) + ROW_COST, bool(names), gain))
    return rows, set(latest.values()) | set(newest.values())


def _stripped(body: dict[str, Any]) -> bytes:
    return encode(json.dumps({**body, "supplies": []}, separators=(",", ":"), ensure_ascii=False))


def _plan(store: Store, keep: set[str], needed: int) -> tuple[dict[str, list[tuple[int, float]]], list[int]]:
    """Which rows to delete (by stage) and which to strip, freeing about NEEDED bytes, least relevant first."""
    rows, must = _scan(store, keep)
    newest = {serial: seq for serial, seq in store.db.execute("SELECT serial, seq FROM latest")}
    deleted: dict[int, str] = {}
    strips: dict[int, int] = {}      # seq -> bytes stripping saves
    freed = 0
    # 2. supplies of intermediate readings
    for seq, serial, _, size, has_meters, gain in rows:
        if freed >= needed:
            break
        if seq == newest.get(serial) or not gain:
            continue
        if not has_meters:
            deleted[seq] = SUPPLIES_ONLY
            freed += size
        else:
            strips[seq] = gain
            freed += gain
    # 3. beyond one per printer and day, then 4. older readings: a deleted row needs no strip
    last_of_day = {(serial, int(at // 86400)): seq for seq, serial, at, *_ in rows}
    days = set(last_of_day.values())
    for stage in (PER_DAY, OLDER):
        for seq, _, _, size, _, _ in rows:
            if freed >= needed:
                break
            if seq in must or seq in deleted or (stage == PER_DAY and seq in days):
                continue
            deleted[seq] = stage
            freed += size - strips.pop(seq, 0)
    by_stage: dict[str, list[tuple[int, float]]] = {}
    at = {row[0]: row[2] for row in rows}
    for seq, stage in sorted(deleted.items()):
        by_stage.setdefault(stage, []).append((seq, at[seq]))
    return by_stage, sorted(strips)


def _delete(store: Store, rows: list[tuple[int, float]], stage: str, result: Compaction,
            goal: int | None, stop: Callable[[], bool]) -> None:
    """Delete (seq, time) rows oldest first, a chunk per transaction (until GOAL, if given)."""
    for i in range(0, len(rows), CHUNK):
        if stop():
            return
        chunk = rows[i:i + CHUNK]
        store._tx([(sql, (seq,)) for seq, _ in chunk
                   for sql in ("DELETE FROM messages WHERE seq=?", "DELETE FROM sent WHERE seq=?")])
        result.note(stage, len(chunk), chunk[0][1])
        if goal is not None and store.size() <= goal:
            return


def _strip(store: Store, seqs: list[int], result: Compaction, stop: Callable[[], bool]) -> None:
    """Rewrite the planned payloads without their supplies, a chunk per transaction."""
    for i in range(0, len(seqs), CHUNK):
        if stop():
            return
        chunk = seqs[i:i + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = list(store.db.execute(f"SELECT seq, payload, coalesce(read_at, created) FROM messages"
                                     f" WHERE seq IN ({marks})", chunk))
        store._tx([("UPDATE messages SET payload=? WHERE seq=?", (_stripped(json.loads(decode(p))), seq))
                   for seq, p, _ in rows])
        result.note(STRIPPED, len(rows), min((at for *_, at in rows), default=None))
