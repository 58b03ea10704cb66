"""`meterbox doctor`: each check says what it found and what to do; --recover rescues a damaged store."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from meterbox.cli import main
from meterbox.printers.reading import Device, Meter, Reading
from meterbox.outbox.store import Store
from support.broker import Broker
from support.cli import run_cli
from support.daemon import BOX_ID, BoxConfig
from support.pki import CertPair, Pki
from support.tmpfs import read_only, tmpfs


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
    assert f"ok    broker       {broker.host}:{broker.port}: reachable; TLS verified" in out
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
    assert f"FAIL  broker       127.0.0.1:{broker.port}: cannot connect" in out
    assert f"port {broker.port} is not blocked" in out
    assert "broker broker" not in out
    assert out.endswith("\n1 problem found\n"), out   # the only failure here: not "1 problems"


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


@pytest.mark.parametrize("wal", [False, True], ids=["closed", "wal-and-shm-left"])
def test_a_read_only_card_is_read_only_not_damaged(tmp_path: Path, wal: bool) -> None:
    box = BoxConfig(state_dir=tmp_path / "state")
    box.state_dir.mkdir()
    made = tmp_path / "made" / "meterbox.db"
    fill(made, 7)
    db = sqlite3.connect(made)
    if wal:  # the card turned read-only under a running daemon: its -wal and -shm are there
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("INSERT INTO state(key, value) VALUES('k', 'v')")
        db.commit()
    with tmpfs(box.state_dir):
        for suffix in ("", "-wal", "-shm") if wal else ("",):
            shutil.copy(f"{made}{suffix}", box.state_dir / f"meterbox.db{suffix}")
        read_only(box.state_dir)
        code, out = doctor(box.write(tmp_path / "meterbox.toml"))
    db.close()
    assert "damaged" not in out, out
    assert "not writable by this user" not in out, out   # chown does not help a read-only card
    lines = [line for line in out.splitlines() if line.startswith(("FAIL  store", "WARN  store", "ok    store"))]
    assert any(line.startswith("FAIL  store") and "read-only file system" in line and "replace the card" in line
               for line in lines), out
    assert any(line.startswith("ok    store") and "8 messages waiting to be sent" in line for line in lines), out
    assert code == 1


def test_a_missing_certificate_file_is_named(tmp_path: Path, broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    box.state_dir.mkdir()
    config = box.write(tmp_path / "meterbox.toml")
    cert, _ = broker.client_cert(BOX_ID)
    gone = tmp_path / "lost" / "client.pem"
    config.write_text(config.read_text().replace(str(cert), str(gone)))
    code, out = doctor(config)
    assert code == 1
    assert "None" not in out, out
    assert f"uplink.cert_file {gone} is missing" in out
    assert any(line.startswith("FAIL  broker") and str(gone) in line for line in out.splitlines()), out


def test_a_key_config_or_state_directory_others_can_read_is_named_with_the_chmod_to_run(tmp_path: Path, broker: Broker) -> None:
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker)
    box.state_dir.mkdir()
    config = box.write(tmp_path / "meterbox.toml")
    key = tmp_path / "box.key"
    shutil.copy(broker.client_cert(BOX_ID)[1], key)
    config.write_text(config.read_text().replace(str(broker.client_cert(BOX_ID)[1]), str(key)))
    key.chmod(0o644)
    config.chmod(0o640)
    box.state_dir.chmod(0o755)
    code, out = doctor(config)
    warnings = [line for line in out.splitlines() if line.startswith("WARN  files")]
    assert any(f"the client key {key} can be read by its group and any user (mode 0644)" in line and f"`chmod 600 {key}`" in line
               for line in warnings), out
    assert any(f"{config} holds the SNMP communities and can be read by its group" in line
               and f"`chmod 600 {config}`" in line for line in warnings), out
    assert any(f"the state directory {box.state_dir} (the store) can be read by its group and any user" in line
               and f"`chmod 700 {box.state_dir}`" in line for line in warnings), out
    assert code == 0, out   # a warning, not a failure: the box works
    key.chmod(0o600)
    config.chmod(0o600)
    box.state_dir.chmod(0o700)
    code, out = doctor(config)
    assert "WARN  files" not in out, out
