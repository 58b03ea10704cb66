"""Meter validation over time: table tests of the rules, then the daemon against a changing printer."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterbox.printers.reading import Meter
from meterbox.printers.validate import CONFIRM, WRAP, Validator, counter_usage
from support.broker import Broker
from support.cli import run_cli
from support.daemon import BoxConfig, Daemon, PrinterEntry, store_rows
from support.snmpsim import Simulator
from support.subscriber import Subscriber
from support.tmpfs import read_only, tmpfs

LIFE = "1.3.6.1.2.1.43.10.2.1.4.1.1"


@pytest.mark.parametrize(("before", "after", "expected"), [
    (1_000, 1_250, (250, None)),
    (1_000, 1_000, (0, None)),
    (4_294_967_200, 100, (196, "wrap32")),
    (50_000, 0, (None, "zero")),
    (50_000, 49_000, (None, "reset")),
    (2_000_000, 100, (None, "reset")),   # far from the top: not a wrap
])
def test_counter_usage(before: int, after: int, expected: tuple[int | None, str | None]) -> None:
    assert counter_usage(before, after) == expected


def run(values: list[int], bits: int | None = 32) -> list[tuple[int | None, str | None]]:
    """Feed a sequence of raw reads of one meter; (value sent or None, event kind) per read."""
    v = Validator()
    out = []
    for raw in values:
        meters, events = v.check("S1", [Meter("impressions.total", raw, "impressions", bits)])
        out.append((meters[0].value if meters else None, events[0].kind if events else None))
    return out


def test_growth_is_sent_as_is() -> None:
    assert run([100, 150, 150, 400]) == [(100, None), (150, None), (150, None), (400, None)]


def test_a_bogus_zero_is_held_and_becomes_a_bad_read() -> None:
    assert run([50_000, 0, 50_010]) == [(50_000, None), (None, "held"), (50_010, "bad-read")]


def test_a_confirmed_drop_is_a_reset() -> None:
    seq = [80_000] + [10 + i for i in range(CONFIRM)]
    result = run(seq)
    assert result[1:-1] == [(None, "held")] * (CONFIRM - 1)
    assert result[-1] == (seq[-1], "reset")


def test_a_32_bit_wrap_keeps_counting() -> None:
    assert run([WRAP - 100, 50, 80]) == [(WRAP - 100, None), (WRAP + 50, "wrap32"), (WRAP + 80, None)]


def test_a_counter64_above_2_32_grows_without_any_wrap() -> None:
    assert run([5_000_000_000, 5_000_000_100], bits=64) == [(5_000_000_000, None), (5_000_000_100, None)]


def test_a_sum_of_counters_above_2_32_grows_without_any_wrap() -> None:
    """A sum (bits None) over 2^32 was taken for a wrapped counter: +100 became 9,294,967,396."""
    assert run([5_000_000_000, 5_000_000_100], bits=None) == [(5_000_000_000, None), (5_000_000_100, None)]


def test_only_a_32_bit_counter_wraps() -> None:
    assert run([WRAP - 100, 50], bits=None)[1] == (None, "held")
    assert run([WRAP - 100, 50], bits=64)[1] == (None, "held")
    assert run([WRAP - 100, 50], bits=32)[1] == (WRAP + 50, "wrap32")


def test_a_32_bit_value_after_a_64_bit_one_is_no_wrap() -> None:
    """A printer whose counter came from a Counter64 (2^64 - 1) and now from a Counter32: a drop, not a wrap."""
    v = Validator()
    v.check("S1", [Meter("marker.life", 2 ** 64 - 1, "impressions", 64)])
    sent, events = v.check("S1", [Meter("marker.life", 100, "impressions", 32)])
    assert sent == [] and [e.kind for e in events] == ["held"]


def test_a_confirmed_reset_after_a_wrap_starts_from_the_new_value_without_the_offset() -> None:
    result = run([WRAP - 100, 50, 80] + [10 + i for i in range(CONFIRM)] + [20, WRAP - 50, 5])
    assert result[:3] == [(WRAP - 100, None), (WRAP + 50, "wrap32"), (WRAP + 80, None)]
    assert result[3:3 + CONFIRM - 1] == [(None, "held")] * (CONFIRM - 1)
    assert result[3 + CONFIRM - 1] == (10 + CONFIRM - 1, "reset")       # not 2^32 + 12
    assert result[3 + CONFIRM:] == [(20, None), (WRAP - 50, None), (WRAP + 5, "wrap32")]


def test_a_missing_meter_is_noted_once() -> None:
    v = Validator()
    v.check("S1", [Meter("impressions.total", 10, "impressions")])
    _, first = v.check("S1", [])
    _, second = v.check("S1", [])
    assert [e.kind for e in first] == ["missing"] and second == []
    assert [e.kind for e in v.open_events()] == ["missing"]


def _set_life(sim: Simulator, text: str) -> None:
    """Serve prtMarkerLifeCount as the given snmprec 'tag|value'."""
    path = sim.recording("jetdirect_m130nw")
    lines = [f"{LIFE}|{text}" if line.startswith(LIFE + "|") else line
             for line in path.read_text(encoding="latin-1").splitlines()]
    sim.replace_recording("jetdirect_m130nw", "\n".join(lines) + "\n")


def test_daemon_holds_back_bad_values_and_shows_them(tmp_path: Path, broker: Broker) -> None:
    """snmpsim serves growth, a bogus 0, a -1 and a return; only good values are published."""
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim, Subscriber(broker) as sub:
        box = BoxConfig(state_dir=tmp_path / "state", broker=broker, interval="300ms",
                        printers=[PrinterEntry(sim.address, "jetdirect_m130nw")])
        with Daemon(box.write(tmp_path / "meterbox.toml"), tmp_path) as daemon:
            def life_values() -> list[int | None]:
                out = []
                for m in sub.on("readings"):
                    life = [x["value"] for x in m.json["meters"] if x["name"] == "marker.life"]
                    out.append(life[0] if life else None)
                return out

            sub.wait_for(lambda ms: 15232 in life_values(), timeout=20)
            _set_life(sim, "65|15300")
            sub.wait_for(lambda ms: 15300 in life_values(), timeout=20)
            _set_life(sim, "2|-1")
            daemon.wait_status(lambda s: any(h["kind"] == "missing" for h in s["meters_held"]))
            _set_life(sim, "65|15305")
            sub.wait_for(lambda ms: 15305 in life_values(), timeout=20)
            _set_life(sim, "65|0")
            status = daemon.wait_status(lambda s: any("dropped to 0" in h["reason"] for h in s["meters_held"]))
            _set_life(sim, "65|15310")
            sub.wait_for(lambda ms: 15310 in life_values(), timeout=20)
            daemon.wait_status(lambda s: not s["meters_held"])
            _set_life(sim, "65|4294967000")
            sub.wait_for(lambda ms: 4294967000 in life_values(), timeout=20)
            _set_life(sim, "65|150")                       # the Counter32 wrapped
            sub.wait_for(lambda ms: WRAP + 150 in life_values(), timeout=20)
            log = daemon.log()
    published = [v for v in life_values() if v is not None]
    assert 0 not in published and -1 not in published
    assert published == sorted(published)          # never a negative usage
    assert "held back, not billed" in log and "was a bad read" in log and "32-bit counter wrapped" in log
    assert any("dropped to 0" in h["reason"] for h in status["meters_held"])


TOTAL = "1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.5.0"   # HP totalEnginePageCount (INTEGER) -> impressions.total
BLACK = "1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.6.0"   # HP totalMonoPageCount (INTEGER) -> impressions.black


def stored_meters(state_dir: Path) -> list[dict[str, int]]:
    """The meters of every stored reading (what the box would send), read without the daemon."""
    import json
    import zlib
    rows = store_rows(state_dir, "SELECT payload FROM messages WHERE kind='reading' ORDER BY seq")
    return [{m["name"]: m["value"] for m in json.loads(zlib.decompress(p))["meters"]} for (p,) in rows]


def test_daemon_restart_keeps_held_missing_and_pending_meters(tmp_path: Path) -> None:
    """1,000,000 -> 0 (held, 1/3) and black missing -> restart -> 0 is still held (2/3), a low black
    is held too, and the return to 1,000,050 is a bad read: no low value is ever stored for sending."""
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim:
        sim.set_values("jetdirect_m130nw", {TOTAL: 1_000_000, BLACK: 900_000})
        # 3 s between polls: the test changes values between two polls, never racing a third read of 0
        box = BoxConfig(state_dir=tmp_path / "state", interval="3s",
                        printers=[PrinterEntry(sim.address, "jetdirect_m130nw")])
        config = box.write(tmp_path / "meterbox.toml")
        with Daemon(config, tmp_path) as daemon:
            daemon.wait_status(lambda s: any(m.get("impressions.total") == 1_000_000
                                             for m in stored_meters(box.state_dir)), timeout=20)
            sim.set_values("jetdirect_m130nw", {TOTAL: 0, BLACK: -1})
            daemon.wait_status(lambda s: {h["meter"] for h in s["meters_held"]} >=
                               {"impressions.total", "impressions.black"}, timeout=20)
        with Daemon(config, tmp_path) as daemon:                     # restart; the printer still says 0
            status = daemon.wait_status(lambda s: any(f"(2/{CONFIRM})" in h["reason"] for h in s["meters_held"]),
                                        timeout=20)
            sim.set_values("jetdirect_m130nw", {TOTAL: 1_000_050, BLACK: 5})
            later = daemon.wait_status(lambda s: any("went back to 5" in h["reason"] for h in s["meters_held"]),
                                       timeout=20)
            sim.set_values("jetdirect_m130nw", {BLACK: 900_010})
            daemon.wait_status(lambda s: not s["meters_held"], timeout=20)
            log = daemon.log()
    held = {h["meter"]: h["reason"] for h in status["meters_held"]}
    assert "dropped to 0 from 1,000,000" in held["impressions.total"]      # the pending reset went on counting
    assert held["impressions.black"].startswith("no value this time")      # still missing, baseline kept
    assert "went back to 5 from 900,000" in {h["meter"]: h["reason"] for h in later["meters_held"]}["impressions.black"]
    totals = [m["impressions.total"] for m in stored_meters(tmp_path / "state") if "impressions.total" in m]
    blacks = [m["impressions.black"] for m in stored_meters(tmp_path / "state") if "impressions.black" in m]
    assert totals[0] == 1_000_000 and totals[-1] == 1_000_050 and min(totals) == 1_000_000
    assert blacks[0] == 900_000 and blacks[-1] == 900_010 and min(blacks) == 900_000
    assert "was a bad read" in log


def test_a_restart_on_a_read_only_card_keeps_the_held_meter_from_the_card(tmp_path: Path, broker: Broker) -> None:
    """1,000,000 -> 0 (held) -> the card turns read-only -> restart on an in-memory store: the 0 is
    still held, from the baselines the card holds, and never reaches the vendor as a new baseline."""
    state = tmp_path / "state"
    state.mkdir()
    with Simulator.with_recordings(["jetdirect_m130nw"], tmp_path / "p") as sim, tmpfs(state, "size=16m"):
        sim.set_values("jetdirect_m130nw", {TOTAL: 1_000_000, BLACK: 900_000})
        # 5 s between polls: the test stops, remounts and starts between two polls, never racing a third 0
        box = BoxConfig(state_dir=state, broker=broker, interval="5s",
                        printers=[PrinterEntry(sim.address, "jetdirect_m130nw")])
        config = box.write(tmp_path / "meterbox.toml")
        with Daemon(config, tmp_path) as daemon:
            daemon.wait_status(lambda s: any(m.get("impressions.total") == 1_000_000
                                             for m in stored_meters(state)), timeout=20)
            sim.set_values("jetdirect_m130nw", {TOTAL: 0})
            daemon.wait_status(lambda s: any(f"(1/{CONFIRM})" in h["reason"] for h in s["meters_held"]), timeout=20)
        read_only(state)
        with Subscriber(broker) as sub, Daemon(config, tmp_path) as daemon:
            daemon.wait_log(r"read-only.*readings are kept in memory only", timeout=20)
            status = daemon.wait_status(lambda s: any(f"(2/{CONFIRM})" in h["reason"] for h in s["meters_held"]),
                                        timeout=20)
            sim.set_values("jetdirect_m130nw", {TOTAL: 1_000_050})
            totals = lambda: [x["value"] for m in sub.on("readings") for x in m.json["meters"]  # noqa: E731
                              if x["name"] == "impressions.total"]
            sub.wait_for(lambda ms: 1_000_050 in totals(), timeout=20)
            text = run_cli("status", "--config", str(config))
            log = daemon.log()
    assert status["live"]["fault"] == "storage", status["live"]        # the red LED's storage code
    assert "FAULT" in text and "readings in memory only (lost on a power cut)" in text, text
    assert "dropped to 0 from 1,000,000" in {h["meter"]: h["reason"] for h in status["meters_held"]}["impressions.total"]
    assert totals() and min(totals()) >= 1_000_000, totals()   # the 0 was never sent, not even as a baseline
    assert "meter baselines of 1 printer were read from it" in log and "was a bad read" in log


def _poll_meters(sim: Simulator, community: str) -> dict[str, Meter]:
    import asyncio

    from meterbox.config import Credential, Secret
    from meterbox.printers.poll import read_printer
    from meterbox.printers.snmp import SnmpClient, Target

    async def go() -> dict[str, Meter]:
        client = SnmpClient()
        try:
            result = await read_printer(client, Target(sim.host, sim.port, Credential(community=Secret(community))))
        finally:
            client.close()
        return {m.name: m for m in result.reading.meters}
    return asyncio.run(go())


def test_the_snmp_type_decides_what_wraps_counter64_and_sums_above_2_32(tmp_path: Path) -> None:
    """A Counter64 and a documented sum (Kyocera black = print + copy + fax) pass 2^32 as plain growth."""
    prints, copies, fax = "1.3.6.1.4.1.1347.42.3.1.2.1.1.1.1", "1.3.6.1.4.1.1347.42.3.1.2.1.1.2.1", \
        "1.3.6.1.4.1.1347.42.3.1.2.1.1.4.1"
    with Simulator.with_recordings(["jetdirect_m130nw", "kyocera_cs-4053ci"], tmp_path / "p") as sim:
        path = sim.recording("jetdirect_m130nw")
        sim.replace_recording("jetdirect_m130nw", path.read_text(encoding="latin-1").replace(
            f"{LIFE}|65|15232", f"{LIFE}|70|5000000000"))                  # a Counter64 prtMarkerLifeCount
        sim.set_values("kyocera_cs-4053ci", {prints: 2_000_000_000, copies: 2_000_000_000, fax: 1_000_000_000})
        v = Validator()
        first = {"hp": _poll_meters(sim, "jetdirect_m130nw"), "kyocera": _poll_meters(sim, "kyocera_cs-4053ci")}
        sim.replace_recording("jetdirect_m130nw", path.read_text(encoding="latin-1").replace(
            f"{LIFE}|70|5000000000", f"{LIFE}|70|5000000100"))
        sim.set_values("kyocera_cs-4053ci", {prints: 2_000_000_100})
        second = {"hp": _poll_meters(sim, "jetdirect_m130nw"), "kyocera": _poll_meters(sim, "kyocera_cs-4053ci")}
    hp, kyocera = first["hp"], first["kyocera"]
    assert (hp["marker.life"].value, hp["marker.life"].bits) == (5_000_000_000, 64)
    assert (kyocera["impressions.black"].value, kyocera["impressions.black"].bits) == (5_000_000_000, None)
    assert kyocera["prints.black"].bits == 32 and hp["impressions.total"].bits == 32
    for printer, name in (("hp", "marker.life"), ("kyocera", "impressions.black")):
        v.check(printer, [first[printer][name]])
        sent, events = v.check(printer, [second[printer][name]])
        assert (sent[0].value, events) == (5_000_000_100, []), name     # +100, not 9,294,967,396
