"""Meter validation over time: table tests of the rules, then the daemon against a changing printer."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterbox.printers.reading import Meter
from meterbox.printers.validate import CONFIRM, WRAP, Validator, counter_usage
from support.broker import Broker
from support.daemon import BoxConfig, Daemon, PrinterEntry
from support.snmpsim import Simulator
from support.subscriber import Subscriber

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


def run(values: list[int]) -> list[tuple[int | None, str | None]]:
    """Feed a sequence of raw reads of one meter; (value sent or None, event kind) per read."""
    v = Validator()
    out = []
    for raw in values:
        meters, events = v.check("S1", [Meter("impressions.total", raw, "impressions")])
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
