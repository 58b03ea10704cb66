"""Factory reset: the button held at power-on, through the fast amber blink; let go cancels."""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from meterbox.box.legend import Legend
from meterbox.box.pins import PinMap
from meterbox.box.reset import ResetPaths, held_at_start
from meterbox.errors import MeterboxError
from support.leds import assert_timeline
from support.loop import pressed_button, wait_until

PINS = PinMap.load()
LEGEND = Legend.load()


def short(seconds: float) -> Legend:
    return dataclasses.replace(LEGEND, button=dataclasses.replace(LEGEND.button, reset_seconds=seconds))


def box_files(root: Path) -> ResetPaths:
    identity = root / "identity"
    identity.mkdir()
    (identity / "identity.json").write_text("{}")
    (identity / "box.key").write_text("key")
    state = root / "state"
    state.mkdir()
    for name in ("site.toml", "client.crt", "client.key", "meterbox.db", "meterbox.db-wal"):
        (state / name).write_text(name)
    return ResetPaths(site=(state / "site.toml",), certificate=(state / "client.crt", state / "client.key"),
                      store=(state / "meterbox.db",), identity=identity)


def test_not_held_does_nothing(tmp_path: Path) -> None:
    paths = box_files(tmp_path)
    assert held_at_start(PINS, LEGEND, paths, pin_factory=MockFactory()) is False
    assert all(p.exists() for p in paths.cleared())


def test_held_through_clears_and_keeps_identity(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Held through the blink (a box powered on with the button down): cleared, blinking fast amber."""
    paths = box_files(tmp_path)
    factory = MockFactory()
    pressed_button(factory, PINS.button)
    amber = factory.pin(PINS.amber)
    legend = short(1.0)
    with caplog.at_level(logging.INFO, logger="meterbox"):
        assert held_at_start(PINS, legend, paths, pin_factory=factory) is True
    assert not any(p.exists() for p in paths.cleared())
    assert not (tmp_path / "state" / "meterbox.db-wal").exists()
    assert (paths.identity / "identity.json").exists() and (paths.identity / "box.key").exists()
    on, off = (t for _, t in LEGEND.state("reset_armed").steps or ())
    assert [s.state for s in amber.states[:4]] == [False, True, False, True]
    assert len(amber.states) >= 1.0 / (on + off)  # blinked the whole second, at its rate
    assert_timeline(amber, [(0.0, False), (amber.states[1].timestamp, True), (on, False), (off, True)])
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "factory reset: removed client certificate" in messages and str(paths.identity) in messages


def test_letting_go_during_the_blink_cancels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = box_files(tmp_path)
    factory = MockFactory()
    button, amber = pressed_button(factory, PINS.button), factory.pin(PINS.amber)
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(
        held_at_start(PINS, short(30.0), paths, pin_factory=factory)))
    with caplog.at_level(logging.INFO, logger="meterbox"):
        worker.start()
        assert wait_until(lambda: len(amber.states) >= 4)  # blinking: armed
        button.drive_high()
        worker.join(5)
    assert result == [False]
    assert all(p.exists() for p in paths.cleared())
    assert "factory reset cancelled" in caplog.text
    assert not amber.state


def test_identity_can_never_be_among_the_cleared(tmp_path: Path) -> None:
    with pytest.raises(MeterboxError, match="identity must be kept"):
        ResetPaths(site=(tmp_path / "etc",), certificate=(), store=(), identity=tmp_path / "etc" / "identity")
