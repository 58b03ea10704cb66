"""The validator's state across restarts: kept in the store, restored when a printer is first seen.

The bug this guards against: after a restart the validator was seeded from the newest stored
reading only, so a meter held back (or missing) in it had no baseline: 1,000,000 -> 0 (held) ->
restart -> 0 was sent as the new baseline.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from meterbox.outbox.store import Store
from meterbox.printers.reading import Device, Meter, Reading
from meterbox.printers.validate import CONFIRM, WRAP, Validator

BOX = "MB-7F3A9C"
SERIAL = "SER1"
T0 = 1_780_000_000.0


def poll(v: Validator, store: Store, values: dict[str, int], bits: int | None = 32) -> dict[str, int]:
    """One poll as the daemon does it: restore on first sight, check, store reading and changed state."""
    if not v.knows(SERIAL):
        v.restore(SERIAL, store.meter_state(SERIAL) or {})
    meters, _ = v.check(SERIAL, [Meter(n, x, "impressions", bits) for n, x in values.items()])
    states = v.unsaved()
    store.add_readings(BOX, [(Device(SERIAL, "Acme", "Laser 1"), Reading(SERIAL, T0, meters))], meter_states=states)
    v.saved(states)
    return {m.name: m.value for m in meters}


def sent(store: Store) -> list[dict[str, int]]:
    return [{m["name"]: m["value"] for m in json.loads(r.payload)["meters"]} for r in store.messages("reading")]


def test_held_missing_and_pending_meters_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    v = Validator()
    poll(v, store, {"impressions.total": 1_000_000, "impressions.black": 900_000, "marker.life": 500})
    assert poll(v, store, {"impressions.total": 0, "marker.life": 510}) == {"marker.life": 510}  # held; black missing
    store.close()

    store, v = Store(tmp_path / "meterbox.db"), Validator()      # restart
    assert poll(v, store, {"impressions.total": 0, "impressions.black": 5, "marker.life": 520}) == {"marker.life": 520}
    held = {e.meter: e for e in v.open_events()}
    assert held["impressions.total"].previous == 1_000_000 and f"(2/{CONFIRM})" in held["impressions.total"].reason
    assert held["impressions.black"].previous == 900_000          # 5 is below the baseline a restart used to forget
    out = poll(v, store, {"impressions.total": 1_000_050, "impressions.black": 900_010, "marker.life": 530})
    assert out == {"impressions.total": 1_000_050, "impressions.black": 900_010, "marker.life": 530}
    assert all(0 not in r.values() and 5 not in r.values() for r in sent(store))
    assert v.open_events() == []


def test_a_pending_reset_is_confirmed_across_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    v = Validator()
    poll(v, store, {"impressions.total": 80_000})
    for i in range(CONFIRM - 1):
        assert poll(v, store, {"impressions.total": 10 + i}) == {}
    store.close()
    store, v = Store(tmp_path / "meterbox.db"), Validator()
    assert poll(v, store, {"impressions.total": 20}) == {"impressions.total": 20}   # the CONFIRM-th low read


def test_a_wrap_offset_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    v = Validator()
    poll(v, store, {"marker.life": WRAP - 100})
    assert poll(v, store, {"marker.life": 50}) == {"marker.life": WRAP + 50}
    store.close()
    store, v = Store(tmp_path / "meterbox.db"), Validator()
    assert poll(v, store, {"marker.life": 90}) == {"marker.life": WRAP + 90}


def test_state_is_written_only_when_it_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    v = Validator()
    writes = []
    for values in ({"impressions.total": 100}, {"impressions.total": 150}, {"impressions.total": 0},
                   {"impressions.total": 0}, {"impressions.total": 160}, {"impressions.total": 170}):
        poll(v, store, values)
        writes.append(store.db.execute("SELECT state FROM meter_state").fetchall())
    # growth alone writes nothing (the reading has the value); a hold, its count and its end do
    assert [len(w) for w in writes] == [0, 0, 1, 1, 1, 1]
    assert writes[2] != writes[3] != writes[4] and writes[4] == writes[5]


def test_a_store_from_before_meter_state_seeds_each_meter_from_the_newest_reading_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "meterbox.db"
    store = Store(path)
    dev = Device(SERIAL, "Acme", "Laser 1")
    for meters in ({"impressions.total": 1_000_000, "impressions.black": 700_000},
                   {"impressions.total": 1_000_100, "impressions.black": 700_050},
                   {"impressions.total": 1_000_200}):                 # black held back in the newest
        store.add_readings(BOX, [(dev, Reading(SERIAL, T0, [Meter(n, x, "impressions") for n, x in meters.items()]))])
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE meter_state")                              # as an older version left it
    db.commit()
    db.close()

    store = Store(path)
    assert store.meter_state(SERIAL) == {"accepted": {"impressions.total": 1_000_200, "impressions.black": 700_050}}
    v = Validator()
    assert poll(v, store, {"impressions.total": 1_000_300, "impressions.black": 0}) == {"impressions.total": 1_000_300}
    assert store.meter_state("OTHER") is None
    # searched once: from now on the printer's state row says it
    assert store.db.execute("SELECT count(*) FROM meter_state WHERE serial=?", (SERIAL,)).fetchone()[0] == 1


def test_a_read_only_store_from_before_meter_state_still_gives_every_meters_baseline(tmp_path: Path) -> None:
    """The card turned read-only before the update could migrate it: the in-memory store starts from
    the baselines the card holds, a held meter's included, found without writing anything."""
    from meterbox.outbox.opening import _memory_store
    path = tmp_path / "meterbox.db"
    store = Store(path)
    dev = Device(SERIAL, "Acme", "Laser 1")
    for meters in ({"impressions.total": 1_000_000, "impressions.black": 700_000},
                   {"impressions.total": 1_000_200}):                 # black held back in the newest
        store.add_readings(BOX, [(dev, Reading(SERIAL, T0, [Meter(n, x, "impressions") for n, x in meters.items()]))])
    store.add_readings(BOX, [(Device("BROKEN", None, None), Reading("BROKEN", T0, [Meter("impressions.total", 5, "impressions")]))])
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE meter_state")
    db.execute("UPDATE messages SET payload=x'00' WHERE serial='BROKEN' AND kind='reading'")   # one damaged row
    db.commit()
    db.close()
    memory = _memory_store(path, "the file system is read-only")
    assert memory.meter_state(SERIAL) == {"accepted": {"impressions.total": 1_000_200, "impressions.black": 700_000}}
    assert memory.meter_state("BROKEN") is None                       # that printer only starts again
    v = Validator()
    assert poll(v, memory, {"impressions.total": 1_000_300, "impressions.black": 0}) == {"impressions.total": 1_000_300}


def test_a_new_store_has_no_legacy_search(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    assert store.state("meter_state_from") is None and store.meter_state(SERIAL) is None
