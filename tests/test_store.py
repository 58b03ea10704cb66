"""The store on its own: clock correction, the outbox order, and compaction under a size limit."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from pathlib import Path

import jsonschema
import pytest
from meterbox.outbox.compact import compact
from meterbox.outbox.failures import StoreCorrupt
from meterbox.outbox.opening import open_store
from meterbox.outbox.store import Store
from meterbox.printers.reading import Device, Meter, Reading, Supply

BOX = "MB-7F3A9C"
SCHEMA = json.loads((Path(__file__).parent.parent / "cloud/contract/reading.v1.schema.json").read_text())
DAY = 86400.0
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def device(serial: str = "SER1") -> Device:
    return Device(serial, "Acme", "Laser 1")


def reading(serial: str = "SER1", at: float = T0, total: int = 1000, *, clock: str = "ntp",
            mono: float | None = None, boot: str = "boot-a", color: int | None = None,
            supplies: int = 4) -> Reading:
    meters = [Meter("impressions.total", total, "impressions")]
    if color is not None:
        meters.append(Meter("impressions.color", color, "impressions"))
    return Reading(serial, at, meters, [Supply(f"toner.{c}", 50, "ok") for c in
                                        ("black", "cyan", "magenta", "yellow")[:supplies]],
                   clock=clock, mono=mono, boot=boot)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "meterbox.db")


def wire(store: Store) -> list[dict]:
    return [json.loads(m.wire()) for m in store.pending(1000) if m.kind == "reading"]


# ------------------------------------------------------------------ clock

def test_held_readings_wait_for_sync_then_carry_the_corrected_time(store: Store) -> None:
    # The box booted with its clock at 1970 + 1 day; readings at monotonic 100 s and 160 s.
    store.add_readings(BOX, [(device(), reading(at=DAY + 100, clock="held", mono=100.0)),
                             (device(), reading(at=DAY + 160, clock="held", mono=160.0, total=1010))])
    assert wire(store) == []                       # nothing leaves while the time can still be corrected
    assert store.held() == 2
    # NTP sets the clock: at monotonic 400 s it is T0.
    assert store.settle_clock(boot="boot-a", synced=True, now=T0, mono=400.0, hold=3600) == (2, 0)
    sent = wire(store)
    assert [(r["read_at"], r["clock"]) for r in sent] == [
        ("2026-05-28T20:21:40Z", "corrected"), ("2026-05-28T20:22:40Z", "corrected")]  # T0 - 300 s, T0 - 240 s
    for r in sent:
        jsonschema.validate(r, SCHEMA)
        assert set(r) == set(SCHEMA["properties"])  # no monotonic offset on the wire


def test_a_reading_from_an_earlier_boot_is_sent_marked_unsynced(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(at=DAY + 100, clock="held", mono=100.0, boot="boot-a"))])
    # Rebooted before the clock ever synced: the monotonic offset means nothing now.
    assert store.settle_clock(boot="boot-b", synced=False, now=DAY + 50, mono=50.0, hold=3600) == (0, 1)
    [r] = wire(store)
    assert r["clock"] == "unsynced" and r["read_at"] == "1970-01-02T00:01:40Z"  # marked: not a true date


def test_held_too_long_without_sync_is_released_unsynced(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(at=DAY, clock="held", mono=10.0)),
                             (device(), reading(at=DAY + 3000, clock="held", mono=3010.0))])
    assert store.settle_clock(boot="boot-a", synced=False, now=DAY + 3700, mono=3710.0, hold=3600) == (0, 1)
    assert [r["clock"] for r in wire(store)] == ["unsynced"]
    assert store.held() == 1


def test_sent_log_shows_what_was_rendered(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(at=DAY, clock="held", mono=10.0))])
    store.settle_clock(boot="boot-a", synced=True, now=T0, mono=20.0, hold=3600)
    [msg] = [m for m in store.pending(10) if m.kind == "reading"]
    store.mark_sent([msg.id])
    assert json.loads(store.sent(1)[0].wire())["clock"] == "corrected"


# ------------------------------------------------------------------ outbox order

def test_backlog_goes_oldest_first_but_fresh_readings_get_part_of_the_window(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(at=T0 + i, total=1000 + i)) for i in range(100)])
    mark = store.last_seq()  # the uplink connected now
    store.add_readings(BOX, [(device(), reading(at=T0 + 500, total=5000))])
    batch = store.pending(20, fresh_after=mark)
    totals = [json.loads(m.payload)["meters"][0]["value"] for m in batch if m.kind == "reading"]
    assert 5000 in totals                                  # the fresh reading is not starved
    backlog = [t for t in totals if t != 5000]
    assert backlog == sorted(backlog) and backlog[0] == 1000  # the backlog, oldest first, in order
    assert len(batch) == 20
    # without a backlog the whole window is fresh, in order
    assert [m.seq for m in store.pending(5, fresh_after=0)] == sorted(m.seq for m in store.pending(5, fresh_after=0))


def test_in_flight_rows_are_not_offered_twice(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(total=i)) for i in range(5)])
    first = store.pending(3)
    again = store.pending(3, exclude={m.id for m in first})
    assert not {m.id for m in first} & {m.id for m in again}


# ------------------------------------------------------------------ compaction

def test_compaction_keeps_every_meters_latest_reading(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "small.db")
    limit = 256 * 1024
    last: dict[tuple[str, str], int] = {}
    with caplog.at_level(logging.WARNING, logger="meterbox.outbox.compact"):
        for i in range(2000):
            serial = f"SER{i % 5}"
            # SER0's color counter is read only now and then: its latest must survive too.
            color = 100 + i if serial != "SER0" or i % 500 == 0 else None
            r = reading(serial, at=T0 + i * 60, total=1000 + i, color=color)
            store.add_readings(BOX, [(device(serial), r)])
            for m in r.meters:
                last[(serial, m.name)] = m.value
            if i % 10 == 0:
                compact(store, limit)
    assert store.size() <= limit
    kept: dict[tuple[str, str], int] = {}
    for m in store.messages("reading"):
        for meter in json.loads(m.payload)["meters"]:
            kept[(m.serial, meter["name"])] = meter["value"]
    assert kept == last  # every meter of every printer, at its latest value
    # each printer's latest reading still has its supplies
    for serial in {s for s, _ in last}:
        latest = [m for m in store.messages("reading") if m.serial == serial][-1]
        assert len(json.loads(latest.payload)["supplies"]) == 4
    lines = [r.getMessage() for r in caplog.records if "store full" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
    assert "every meter's latest reading is kept" in lines[0]


def test_compaction_takes_the_sent_log_before_any_unsent_reading(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    store.add_readings(BOX, [(device(), reading(at=T0 + i, total=i)) for i in range(400)])
    store.mark_sent([m.id for m in store.pending(1000)])
    store.add_readings(BOX, [(device(), reading(at=T0 + 1000 + i, total=1000 + i)) for i in range(50)])
    unsent = {m.id for m in store.pending(1000)}
    result = compact(store, store.size() // 2)
    assert result is not None and set(result.counts) == {"sent messages (transparency log)"}
    assert {m.id for m in store.pending(1000)} == unsent


# ------------------------------------------------------------------ damaged store

def test_a_corrupt_store_is_moved_aside_and_a_new_one_started(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "meterbox.db"
    path.write_bytes(b"this is not a database, it was a power cut in the middle of a write" * 100)
    with pytest.raises(StoreCorrupt, match="damaged"):
        Store(path, check=True)
    with caplog.at_level(logging.ERROR):
        store = open_store(path)
    store.add_readings(BOX, [(device(), reading())])
    assert store.backlog() == 2
    aside = list(tmp_path.glob("meterbox.db.corrupt-*"))
    assert len(aside) == 1
    assert any("moved to" in r.getMessage() and "doctor --recover" in r.getMessage() for r in caplog.records)


OLD_PAYLOAD = ('{"v":1,"id":"01JDX3K8Q4M2T5R6S7V8W9X0YZ","box":"MB-7F3A9C","serial":"%s",'
               '"read_at":"2026-11-24T10:00:00Z","clock":"ntp","meters":[],"supplies":[]}')


def _old_store(path: Path, serial: str = "S") -> None:
    """A store as an early version left it: no clock columns, text payloads, no contract check."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
               " kind TEXT NOT NULL, serial TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL,"
               " created REAL NOT NULL, sent_at REAL)")
    db.execute("INSERT INTO messages(id, kind, serial, topic, payload, created) VALUES('X', 'reading', ?, 't', ?, 1)",
               (serial, OLD_PAYLOAD % serial))
    db.commit()
    db.close()


def test_an_older_store_gains_the_clock_columns(tmp_path: Path) -> None:
    _old_store(tmp_path / "old.db")
    store = Store(tmp_path / "old.db")
    [m] = store.pending(5)
    assert m.wire() == OLD_PAYLOAD % "S"  # rows from before keep their payload as stored


def test_an_older_row_outside_the_contract_is_refused_on_its_way_out(tmp_path: Path) -> None:
    """Stored before the box checked the contract: the broker would take it, the vendor's ingest not."""
    _old_store(tmp_path / "old.db", serial="S" * 65)
    store = Store(tmp_path / "old.db")
    assert store.pending(5) == [] and store.pending(5) == []
    assert store.backlog() == 0
    assert store.refused()[0]["reason"] == "serial must be shorter than or equal to 64 characters"


def test_a_new_printer_polled_twice_in_one_commit_is_announced_once(store: Store) -> None:
    store.add_readings(BOX, [(device(), reading(total=1)), (device(), reading(total=2))])
    assert [m.kind for m in store.messages()] == ["device", "reading", "reading"]


def test_a_printer_is_announced_again_when_the_box_learns_its_model_never_to_forget_it(store: Store) -> None:
    """Firmware that names more models (an update) tells the vendor once; a poll that names less does not."""
    def announced() -> list[str | None]:
        return [json.loads(m.wire())["model"] for m in store.messages() if m.kind == "device"]

    store.add_readings(BOX, [(Device("SER1", "Acme", None), reading(total=1))])
    store.add_readings(BOX, [(Device("SER1", "Acme", None), reading(total=2))])
    assert announced() == [None]
    store.add_readings(BOX, [(Device("SER1", "Acme", "Laser 9"), reading(total=3))])
    store.add_readings(BOX, [(Device("SER1", "Acme", "Laser 9"), reading(total=4))])
    assert announced() == [None, "Laser 9"]
    store.add_readings(BOX, [(Device("SER1", "Acme", None), reading(total=5))])   # a poll that named less
    assert announced() == [None, "Laser 9"]


def test_compaction_deletes_first_and_never_rewrites_a_row_it_then_deletes(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    # One printer read every minute for two days: stripping supplies cannot free enough,
    # so whole intermediate readings go too; those must not have been rewritten first.
    for i in range(0, 2 * 1440, 4):
        store.add_readings(BOX, [(device(), reading(at=T0 + i * 60, total=1000 + i, color=10 + i))])
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    result = compact(store, store.size() // 4)
    store.db.set_trace_callback(None)
    assert result is not None and result.after < result.before
    deleted = {int(s.rsplit("=", 1)[1]) for s in statements if s.startswith("DELETE FROM messages WHERE seq=")}
    rewritten = [int(s.rsplit("=", 1)[1]) for s in statements if s.startswith("UPDATE messages SET payload=")]
    assert deleted and not set(rewritten) & deleted
    writes = [s.split()[0] for s in statements if s.startswith(("DELETE FROM messages", "UPDATE messages"))]
    assert writes == sorted(writes)  # every DELETE before the first UPDATE ("DELETE" < "UPDATE")
    assert result.counts.get("intermediate readings beyond one per printer per day")


def test_compaction_stops_between_transactions_when_asked(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    for i in range(3000):
        store.add_readings(BOX, [(device(), reading(at=T0 + i * 60, total=1000 + i))])
    backlog = store.backlog()
    asked = iter([False, False, True])
    result = compact(store, store.size() // 4, stop=lambda: next(asked, True))
    assert result is not None and result.stopped
    assert backlog - store.backlog() <= 2 * 200  # at most the chunks before the stop


# ------------------------------------------------------------------ files

def modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [directory, *directory.iterdir()]}


def test_the_store_and_its_wal_are_for_the_service_user_only(tmp_path: Path) -> None:
    umask = os.umask(0o022)   # a usual umask: files 0644, directories 0755
    try:
        store = open_store(tmp_path / "state" / "meterbox.db")
        store.add_readings(BOX, [(device(), reading())])
        assert modes(tmp_path / "state") == {"state": 0o700, "meterbox.db": 0o600, "meterbox.db-wal": 0o600,
                                             "meterbox.db-shm": 0o600}
        store.close()
    finally:
        os.umask(umask)


def test_a_store_others_could_read_is_made_private_when_opened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store(state / "meterbox.db")
    store.add_readings(BOX, [(device(), reading())])
    for path in state.iterdir():
        path.chmod(0o644)
    state.chmod(0o755)
    again = Store(state / "meterbox.db")
    assert modes(state) == {"state": 0o755, "meterbox.db": 0o600, "meterbox.db-wal": 0o600,
                            "meterbox.db-shm": 0o600}   # a directory that exists may be shared: doctor warns
    again.close()
    store.close()
