"""`meterbox doctor --recover FILE`: what a damaged store still holds comes back, once, quickly;
what is not a meterbox store is refused."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from meterbox.cli import main
from meterbox.outbox.store import Store
from meterbox.printers.reading import Device, Meter, Reading, Supply
from support.daemon import BOX_ID, BoxConfig

READINGS = 3000


def recover(tmp_path: Path, damaged: Path) -> tuple[int, str, float]:
    """Exit code, everything printed, and seconds taken by `meterbox doctor --recover DAMAGED`."""
    config = BoxConfig(state_dir=tmp_path / "state").write(tmp_path / "meterbox.toml")
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["doctor", "--config", str(config), "--recover", str(damaged)])
    return code, out.getvalue(), time.monotonic() - started


def outbox(tmp_path: Path) -> list[str]:
    """Ids of the live store's unsent readings."""
    store = Store(tmp_path / "state" / "meterbox.db")
    try:
        return [m.id for m in store.pending(100_000) if m.kind == "reading"]
    finally:
        store.close()


def make_store(path: Path, count: int = READINGS, sent: int = 0) -> list[str]:
    """A store of COUNT readings of 5 printers, as the daemon writes them; the first SENT acknowledged."""
    store = Store(path)
    ids: list[str] = []
    batch: list[tuple[Device, Reading]] = []
    for i in range(count):
        serial = f"SER{i % 5}"
        reading = Reading(serial, 1_780_000_000 + i, [Meter("impressions.total", 10_000 + i, "impressions"),
                                                     Meter("impressions.color", 3_000 + i, "impressions")],
                          [Supply(f"toner.{c}", 90 - i % 80, "ok") for c in ("black", "cyan", "magenta")])
        batch.append((Device(serial, "Acme", "Laser"), reading))
        ids.append(reading.id)
        if len(batch) == 50:
            store.add_readings(BOX_ID, batch)
            batch = []
    store.add_readings(BOX_ID, batch)
    store.mark_sent(ids[:sent])
    store.close()
    assert not Path(f"{path}-wal").exists()
    return ids


def damaged_copy(tmp_path: Path, edit: str) -> tuple[Path, list[str]]:
    path = tmp_path / "meterbox.db.corrupt-20261125T120000"
    ids = make_store(path)
    raw = bytearray(path.read_bytes())
    if edit == "half":
        raw = raw[:len(raw) // 2]
    elif edit == "header":
        raw[:100] = os.urandom(100)
    elif edit == "garbage page":
        page = len(raw) // 1024 // 2
        raw[page * 1024:(page + 1) * 1024] = os.urandom(1024)
    path.write_bytes(bytes(raw))
    return path, ids


def test_a_store_cut_to_half_gives_back_what_its_first_half_holds(tmp_path: Path) -> None:
    damaged, ids = damaged_copy(tmp_path, "half")
    code, out, took = recover(tmp_path, damaged)
    back = outbox(tmp_path)
    assert code == 0, out
    assert set(back) <= set(ids) and len(back) == len(set(back))
    assert len(back) >= 1400, out
    assert out.startswith(f"{len(back)} unsent readings recovered, 0 already there, "), out
    assert took < 30, took
    print(f"\nhalf a store: {len(back)} of {READINGS} readings recovered in {took:.1f} s")


def test_a_store_whose_header_is_overwritten_gives_back_nearly_everything_fast(tmp_path: Path) -> None:
    damaged, ids = damaged_copy(tmp_path, "header")
    with pytest.raises(sqlite3.DatabaseError):  # SQLite itself gives up on this file
        sqlite3.connect(damaged).execute("SELECT count(*) FROM messages").fetchone()
    code, out, took = recover(tmp_path, damaged)
    back = outbox(tmp_path)
    assert code == 0, out
    assert set(back) <= set(ids) and len(back) >= READINGS - 20, out
    assert took < 10, took
    print(f"\nheader overwritten: {len(back)} of {READINGS} readings recovered in {took:.1f} s")


def test_a_page_of_garbage_in_the_middle_costs_only_that_page(tmp_path: Path) -> None:
    damaged, ids = damaged_copy(tmp_path, "garbage page")
    code, out, _ = recover(tmp_path, damaged)
    back = outbox(tmp_path)
    assert code == 0, out
    assert set(back) <= set(ids) and len(back) >= READINGS - 10, out   # a 1 KiB page holds a few readings
    assert "1 page unreadable" in out, out


def test_recovering_twice_adds_nothing_twice(tmp_path: Path) -> None:
    damaged, _ = damaged_copy(tmp_path, "garbage page")
    recover(tmp_path, damaged)
    first = outbox(tmp_path)
    code, out, _ = recover(tmp_path, damaged)
    assert code == 0
    assert out.startswith(f"0 unsent readings recovered, {len(first)} already there"), out
    assert sorted(outbox(tmp_path)) == sorted(first)


def test_readings_the_broker_acknowledged_stay_delivered(tmp_path: Path) -> None:
    damaged = tmp_path / "meterbox.db.corrupt-20261125T120000"
    ids = make_store(damaged, 1000, sent=600)
    code, out, _ = recover(tmp_path, damaged)
    assert code == 0, out
    assert sorted(outbox(tmp_path)) == sorted(ids[600:])


def test_the_newest_readings_are_read_from_the_wal_beside_the_file(tmp_path: Path) -> None:
    live = tmp_path / "box" / "meterbox.db"
    older = make_store(live, 500)
    store = Store(live)  # the daemon's connection stays open: its newest commits are only in the WAL
    store.db.execute("PRAGMA wal_autocheckpoint=0")
    newer = [Reading("SER9", 1_790_000_000 + i, [Meter("impressions.total", i, "impressions")]) for i in range(200)]
    store.add_readings(BOX_ID, [(Device("SER9", "Acme", "Laser"), r) for r in newer])
    damaged = tmp_path / "meterbox.db.corrupt-20261125T120000"
    shutil.copy(live, damaged)
    shutil.copy(f"{live}-wal", f"{damaged}-wal")
    store.close()
    raw = bytearray(damaged.read_bytes())
    raw[:100] = bytes(100)   # and the main file's header is gone
    damaged.write_bytes(bytes(raw))
    code, out, _ = recover(tmp_path, damaged)
    assert code == 0, out
    assert set(outbox(tmp_path)) == set(older) | {r.id for r in newer}, out


@pytest.mark.parametrize("what", ["/etc/passwd", "random bytes", "empty"])
def test_what_is_not_sqlite_is_refused(tmp_path: Path, what: str) -> None:
    target = Path(what)
    if what == "random bytes":
        target = tmp_path / "random.bin"
        target.write_bytes(os.urandom(300_000))
    elif what == "empty":
        target = tmp_path / "empty.db"
        target.touch()
    code, out, took = recover(tmp_path, target)
    assert code == 2, out
    assert out == f"meterbox: {target} is not a SQLite file (no SQLite header, no database pages); nothing was changed\n"
    assert took < 5
    assert not (tmp_path / "state" / "meterbox.db").exists()   # nothing was made either


def test_a_sqlite_file_of_something_else_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "places.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE moz_places(id INTEGER PRIMARY KEY, url TEXT, title TEXT)")
    db.executemany("INSERT INTO moz_places(url, title) VALUES(?, ?)",
                   [(f"https://example.org/{i}", f"page {i}") for i in range(2000)])
    db.commit()
    db.close()
    code, out, _ = recover(tmp_path, other)
    assert code == 2, out
    assert "is a SQLite file but not a meterbox store" in out and out.count("\n") == 1, out


def test_the_live_store_itself_is_refused(tmp_path: Path) -> None:
    make_store(tmp_path / "state" / "meterbox.db", 10)
    code, out, _ = recover(tmp_path, tmp_path / "state" / "meterbox.db")
    assert code == 2 and "is the live store" in out, out


def test_the_scan_stops_at_its_time_limit_and_says_so(tmp_path: Path) -> None:
    from meterbox.outbox.recover import scan

    damaged = tmp_path / "meterbox.db.corrupt-20261125T120000"
    make_store(damaged, 3000)
    found = scan(damaged, budget=0.0)
    assert found.stopped_at is not None and found.stopped_at < found.pages


def test_a_page_of_an_older_store_without_the_new_columns_is_read(tmp_path: Path) -> None:
    """Stores written before read_at/clock/mono/boot existed have 8 columns per row."""
    damaged = tmp_path / "old.db"
    db = sqlite3.connect(damaged)
    db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
               " kind TEXT NOT NULL, serial TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,"
               " created REAL NOT NULL, sent_at REAL)")
    readings = [Reading("OLD1", 1_700_000_000 + i, []) for i in range(40)]
    ids = [r.id for r in readings]
    db.executemany("INSERT INTO messages(id, kind, serial, topic, payload, created, sent_at) VALUES(?,?,?,?,?,?,?)",
                   [(r.id, "reading", "OLD1", f"meterbox/v1/{BOX_ID}/readings", json.dumps(r.payload(BOX_ID)),
                     1_700_000_000.5, 1_700_000_100.0 if n < 10 else None) for n, r in enumerate(readings)])
    db.commit()
    db.close()
    code, out, _ = recover(tmp_path, damaged)
    assert code == 0, out
    assert sorted(outbox(tmp_path)) == sorted(ids[10:])


def test_overflowing_payloads_are_followed_to_their_overflow_pages(tmp_path: Path) -> None:
    damaged = tmp_path / "meterbox.db.corrupt-20261125T120000"
    store = Store(damaged)
    big = [Reading("BIG1", 1_780_000_000 + i, [Meter(f"vendor.counter{k}", os.urandom(3)[0] * k, "impressions")
                                               for k in range(150)]) for i in range(30)]
    store.add_readings(BOX_ID, [(Device("BIG1", "Acme", "Laser"), r) for r in big])
    assert max(len(row[0]) for row in store.db.execute("SELECT payload FROM messages")) > 1024
    store.close()
    raw = bytearray(damaged.read_bytes())
    raw[:100] = bytes(100)
    damaged.write_bytes(bytes(raw))
    code, out, _ = recover(tmp_path, damaged)
    assert code == 0, out
    assert set(outbox(tmp_path)) == {r.id for r in big}, out
    assert "0 pages unreadable" in out, out

