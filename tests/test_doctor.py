"""`meterbox doctor`: each check says what it found and what to do; --recover rescues a damaged store."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from meterbox.cli import main
from meterbox.printers.reading import Device, Meter, Reading
from meterbox.outbox.store import Store
from support.broker import Broker
from support.cli import run_cli
from support.daemon import BOX_ID, BoxConfig
from support.pki import CertPair, Pki


@pytest.fixture(autouse=True)
def synced_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = tmp_path / "clock.json"
    clock.write_text(json.dumps({"synced": True}))
    monkeypatch.setenv("METERBOX_CLOCK_FILE", str(clock))


def doctor(config: Path, *more: str) -> tuple[int, str]:
    """Exit code and everything printed: a failing check still prints every line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["doctor", "--config", str(config), *more])
    return code, out.getvalue()


def fill(path: Path, count: int) -> list[str]:
    store = Store(path)
    readings = [Reading("SER1", 1_780_000_000 + i, [Meter("impressions.total", i, "impressions")])
                for i in range(count)]
    store.add_readings(BOX_ID, [(Device("SER1", "Acme", "Laser"), r) for r in readings])
    store.close()
    return [r.id for r in readings]


def test_a_healthy_box_passes_every_check(tmp_path: Path, broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    box.state_dir.mkdir()
    fill(box.state_dir / "meterbox.db", 3)
    code, out = doctor(box.write(tmp_path / "meterbox.toml"))
    assert code == 0, out
    assert "all checks passed" in out
    assert "intact" in out and "4 messages waiting to be sent" in out
    assert "the client key matches its certificate" in out
    assert f"broker {broker.host}:{broker.port}: reachable; TLS verified" in out
    assert "synchronised" in out


def test_each_problem_is_named_with_what_to_do(tmp_path: Path, pki: Pki, broker: Broker) -> None:
    expired = pki.client(BOX_ID, expired=True)
    other = pki.client(BOX_ID, ca="other-ca")
    mixed = CertPair(expired.cert, other.key)  # a certificate with somebody else's key
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker, cert=mixed)
    box.state_dir.mkdir()
    (box.state_dir / "meterbox.db").write_bytes(b"garbage, not SQLite " * 200)
    code, out = doctor(box.write(tmp_path / "meterbox.toml"))
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith("FAIL  store") and "damaged" in line and "--recover" in line for line in lines)
    assert any(line.startswith("FAIL  certificates") and "expired on" in line and "re-enroll" in line
               for line in lines)
    assert any(line.startswith("FAIL  certificates") and "does not belong to the certificate" in line
               for line in lines)
    assert any(line.startswith("FAIL  broker") for line in lines), out
    assert "problems found" in out


def test_an_unreachable_broker_says_which_port(tmp_path: Path, pki: Pki) -> None:
    broker = Broker(pki, work_dir=tmp_path / "broker")  # configured, never started
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker, uplink_extra='transport = "mqtt"')
    box.state_dir.mkdir()
    code, out = doctor(box.write(tmp_path / "meterbox.toml"))
    assert code == 1
    assert f"FAIL  broker       broker 127.0.0.1:{broker.port}: cannot connect" in out
    assert f"port {broker.port} is not blocked" in out


def test_paused_box_does_not_contact_the_broker(tmp_path: Path, pki: Pki) -> None:
    broker = Broker(pki, work_dir=tmp_path / "broker")
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    config = box.write(tmp_path / "meterbox.toml")
    run_cli("pause", "--config", str(config))
    code, out = doctor(config)
    assert "uploads are paused: the broker was not contacted" in out
    assert code == 0, out


def test_recover_puts_what_a_damaged_store_still_holds_back_into_the_outbox(tmp_path: Path, broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    box.state_dir.mkdir()
    damaged = tmp_path / "meterbox.db.corrupt-20261125T120000"
    ids = fill(damaged, 600)
    raw = bytearray(damaged.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 3 * 1024] = b"\xff" * 3 * 1024  # three pages destroyed by a power cut
    damaged.write_bytes(bytes(raw))
    (tmp_path / "state" / damaged.name).write_bytes(bytes(raw))
    config = box.write(tmp_path / "meterbox.toml")
    code, out = doctor(config)
    assert f"doctor --recover {box.state_dir / damaged.name}" in out
    out = run_cli("doctor", "--config", str(config), "--recover", str(damaged))
    store = Store(box.state_dir / "meterbox.db")
    back = {m.id for m in store.messages("reading")}
    store.close()
    assert back <= set(ids) and len(back) >= 550, out  # everything readable came back, with its own id
    assert out.startswith(f"{len(back)} unsent readings recovered, 0 already there, ")
    again = run_cli("doctor", "--config", str(config), "--recover", str(damaged))
    assert again.startswith(f"0 unsent readings recovered, {len(back)} already there")  # idempotent


def test_an_expired_ca_is_reported(tmp_path: Path, pki: Pki, broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    box.state_dir.mkdir()
    config = box.write(tmp_path / "meterbox.toml")
    shutil.copy(pki.server_expired.cert, tmp_path / "old-ca.pem")
    config.write_text(config.read_text().replace(str(broker.ca_file), str(tmp_path / "old-ca.pem")))
    code, out = doctor(config)
    assert code == 1
    assert "uplink.ca_file" in out and "expired on" in out and "ask the vendor for its new CA" in out
