"""Keeping the store within [store] max_size: the least billing-relevant data goes first.

Meters are lifetime counters, so the latest value of each meter carries the bill; the
readings in between only say when the pages were printed. When the store is over its
limit, it is compacted down to TARGET of the limit, stage by stage, each stage oldest
first and only as far as needed:

1. sent messages: the local transparency log of what the vendor already has;
2. supplies of intermediate readings: an unsent reading that is not its printer's latest
   loses its supplies levels (the latest reading still has them); a reading left with no
   meters at all (supplies-only) is removed;
3. intermediate readings beyond one per printer per day (the day's last one is kept);
4. older readings of a printer.

Never removed: unsent device announcements, rows in flight, and for every printer the
latest reading holding each of its meters (so no meter value that only one reading
holds is lost). One log line per compaction says what went, with counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meterbox.printers.reading import utc_iso
from meterbox.outbox.store import UNSENT, Store, decode, encode

log = logging.getLogger(__name__)

TARGET = 0.8  # compact down to this share of max_size, so compaction is rare
CHUNK = 200   # rows per transaction


@dataclass
class Compaction:
    """What one compaction did, for its single log line."""

    before: int
    after: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)

    def note(self, stage: str, count: int, oldest: float | None) -> None:
        if count:
            self.counts[stage] = self.counts.get(stage, 0) + count
            if oldest is not None:
                self.oldest.setdefault(stage, oldest)

    def __str__(self) -> str:
        parts = [f"{n:,} {stage}" + (f" (oldest {utc_iso(self.oldest[stage])})" if stage in self.oldest else "")
                 for stage, n in self.counts.items()]
        return ", ".join(parts) or "nothing (every row left is a meter's latest reading or in flight)"


def compact(store: Store, max_bytes: int, protect: Iterable[str] = ()) -> Compaction | None:
    """Compact STORE if it is over MAX_BYTES; None if there was no need. PROTECT: ids in flight."""
    before = store.size()
    if before <= max_bytes:
        return None
    goal = int(max_bytes * TARGET)
    result = Compaction(before)
    keep = set(protect)
    stages = (_sent, _supplies, _per_day, _older)
    for stage in stages:
        stage(store, goal, keep, result)
        if store.size() <= goal:
            break
    if store.size() > max_bytes and any(result.counts.values()):
        store.db.execute("VACUUM")  # scattered deletes leave part-filled pages; rare, so worth a rewrite
    result.after = store.size()
    log.warning("store full (%s, limit %s): compacted %s; now %s; every meter's latest reading is kept",
                _mb(before), _mb(max_bytes), result, _mb(result.after))
    return result


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _rows(store: Store, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return list(store.db.execute(sql, args))


def _delete(store: Store, goal: int, rows: list[tuple[int, float]], stage: str, result: Compaction) -> None:
    """Delete (seq, time) rows oldest first, a chunk per transaction, until the goal is met."""
    for i in range(0, len(rows), CHUNK):
        chunk = rows[i:i + CHUNK]
        store._tx([(sql, (seq,)) for seq, _ in chunk
                   for sql in ("DELETE FROM messages WHERE seq=?", "DELETE FROM sent WHERE seq=?")])
        result.note(stage, len(chunk), chunk[0][1])
        if store.size() <= goal:
            return


def _sent(store: Store, goal: int, keep: set[str], result: Compaction) -> None:
    rows = _rows(store, "SELECT seq, created FROM messages WHERE seq IN (SELECT seq FROM sent)"
                        " AND seq NOT IN (SELECT seq FROM latest) ORDER BY seq")  # validation starts from latest
    _delete(store, goal, [(s, t) for s, t in rows], "sent messages (transparency log)", result)


def _unsent_readings(store: Store, keep: set[str]) -> list[tuple[int, str, str, float, dict[str, Any]]]:
    """(seq, id, serial, read_at, body) of unsent readings not in flight, oldest first."""
    rows = _rows(store, "SELECT seq, id, serial, coalesce(read_at, created), payload FROM messages"
                        f" WHERE kind='reading' AND {UNSENT} ORDER BY seq")
    return [(seq, i, serial, t, json.loads(decode(p))) for seq, i, serial, t, p in rows if i not in keep]


def _latest(store: Store) -> set[int]:
    """Seqs that must stay: per printer, its latest reading and the latest one holding each meter."""
    latest: dict[tuple[str, str], int] = {}
    newest: dict[str, int] = {}
    for seq, serial, payload in store.db.execute(
            "SELECT seq, serial, payload FROM messages WHERE kind='reading' ORDER BY seq"):
        newest[serial] = seq
        for meter in json.loads(decode(payload)).get("meters", []):
            latest[(serial, meter["name"])] = seq
    return set(latest.values()) | set(newest.values())


def _supplies(store: Store, goal: int, keep: set[str], result: Compaction) -> None:
    """Strip supplies from intermediate readings; remove those then holding nothing."""
    newest = {serial: seq for serial, seq in _rows(store, "SELECT serial, seq FROM latest")}
    candidates = [r for r in _unsent_readings(store, keep)
                  if r[0] != newest.get(r[2]) and r[4].get("supplies")]
    for i in range(0, len(candidates), CHUNK):
        statements: list[tuple[str, tuple[Any, ...]]] = []
        stripped = removed = 0
        for seq, _, _, _, body in candidates[i:i + CHUNK]:
            if not body.get("meters"):
                statements.append(("DELETE FROM messages WHERE seq=?", (seq,)))
                removed += 1
            else:
                body["supplies"] = []
                text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
                statements.append(("UPDATE messages SET payload=? WHERE seq=?", (encode(text), seq)))
                stripped += 1
        store._tx(statements)
        oldest = candidates[i][3]
        result.note("intermediate readings stripped of supplies", stripped, oldest)
        result.note("supplies-only intermediate readings removed", removed, oldest)
        if store.size() <= goal:
            return


def _per_day(store: Store, goal: int, keep: set[str], result: Compaction) -> None:
    """Thin intermediate readings to the last one of each printer and UTC day."""
    must = _latest(store)
    last_of_day: dict[tuple[str, int], int] = {}
    readings = _unsent_readings(store, keep)
    for seq, _, serial, t, _ in readings:
        last_of_day[(serial, int(t // 86400))] = seq
    days = set(last_of_day.values())
    rows = [(seq, t) for seq, _, _, t, _ in readings if seq not in must and seq not in days]
    _delete(store, goal, rows, "intermediate readings beyond one per printer per day", result)


def _older(store: Store, goal: int, keep: set[str], result: Compaction) -> None:
    """Remove a printer's older readings, keeping the latest holding each meter."""
    must = _latest(store)
    rows = [(seq, t) for seq, _, _, t, _ in _unsent_readings(store, keep) if seq not in must]
    _delete(store, goal, rows, "older readings", result)
