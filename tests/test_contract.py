"""The wire contract is checked on the box, against the vendor's own schema files.

A serial over 64 characters or a model over 128 was published, acknowledged by the broker and
rejected by the vendor's ingest: the box marked it sent and the vendor never had it. Now a
value that can be cut or cleaned is, and a message that still does not fit stays on the box.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from meterbox.config import Credential, Secret
from meterbox.errors import MeterboxError
from meterbox.outbox import wire
from meterbox.outbox.store import Store
from meterbox.printers.poll import PollResult, read_printer
from meterbox.printers.reading import Device, Meter, Reading, Supply
from meterbox.printers.snmp import SnmpClient, Target
from meterbox_cloud.contract import ContractError, check
from support import PRINTERS
from support.cli import run_cli
from support.snmpsim import Simulator

ROOT = Path(__file__).resolve().parent.parent
BOX = "MB-7F3A9C"
T0 = 1_780_000_000.0


def reading(serial: str = "SER1") -> Reading:
    return Reading(serial, T0, [Meter("impressions.total", 1000, "impressions")], [Supply("toner.black", 50, "ok")])


def vendor_accepts(store: Store) -> list[str]:
    """Every message the store would send, through the vendor's own ingest check; their kinds."""
    kinds = []
    for message in store.pending(10_000):
        box, kind, _ = check(message.topic, message.wire().encode())
        assert box == BOX
        kinds.append(kind)
    return kinds


def test_the_package_reads_the_vendors_schema_files() -> None:
    assert wire.CONTRACT.resolve() == (ROOT / "cloud" / "contract").resolve()
    for name in wire.SCHEMAS.values():
        assert (wire.CONTRACT / name).read_bytes() == (ROOT / "cloud" / "contract" / name).read_bytes()


def test_a_built_wheel_carries_the_real_schema_files(tmp_path: Path) -> None:
    """The symlink outbox/contract -> cloud/contract becomes real files in the wheel, not a second copy to drift."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = tmp_path.glob("meterbox-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in wire.SCHEMAS.values():
            assert zf.read(f"meterbox/outbox/contract/{name}") == (ROOT / "cloud" / "contract" / name).read_bytes()


def test_a_200_character_serial_is_kept_on_the_box_and_never_offered(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    long = "S" * 200
    store.add_readings(BOX, [(Device(long, "Acme", "Laser 1"), reading(long)), (Device("OK1", "Acme", "L"), reading("OK1"))])
    assert vendor_accepts(store) == ["devices", "readings"]                  # the good printer only
    assert store.backlog() == 2
    refused = {r["kind"]: r for r in store.refused()}
    assert set(refused) == {"device", "reading"}
    assert refused["reading"]["reason"] == "serial must be shorter than or equal to 64 characters"
    store.close()
    config = tmp_path / "meterbox.toml"
    config.write_text(f'[box]\nid = "{BOX}"\nstate_dir = "{tmp_path}"\n')
    out = run_cli("status", "--config", str(config))
    assert "not sent: printer SSSS" in out and "outside the wire contract (serial must be shorter" in out
    assert json.loads(run_cli("status", "--config", str(config), "--json"))["refused"][0]["count"] == 1


def test_a_long_model_is_cut_and_control_characters_go(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    model = "LaserJet \x1b[2J\x07Pro " + " ".join(["M404dn"] * 40)             # 290 characters, an escape and a bell
    store.add_readings(BOX, [(Device("SER1", "HP\x7f", model), reading())])
    assert vendor_accepts(store) == ["devices", "readings"]
    announced = json.loads(next(store.messages("device")).payload)
    assert announced["model"].startswith("LaserJet Pro M404dn M404dn") and len(announced["model"]) <= 128
    assert announced["model"].endswith("M404dn") and announced["manufacturer"] == "HP"
    assert store.db.execute("SELECT model FROM devices").fetchone()[0] == announced["model"]


def test_a_meter_outside_the_contract_is_left_out_the_rest_is_sent(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    bad = Reading("SER1", T0, [Meter("impressions.total", 1000, "impressions"), Meter("Total Pages!", 5, "")],
                  [Supply("toner.black", 150, "ok"), Supply("toner.cyan", 40, "ok")])
    store.add_readings(BOX, [(Device("SER1", "Acme", "L"), bad)])
    assert vendor_accepts(store) == ["devices", "readings"]
    body = json.loads(next(store.messages("reading")).payload)
    assert [m["name"] for m in body["meters"]] == ["impressions.total"]
    assert [s["name"] for s in body["supplies"]] == ["toner.cyan"]


def test_a_status_outside_the_contract_is_not_sent(tmp_path: Path) -> None:
    store = Store(tmp_path / "meterbox.db")
    store.add_status(BOX, {"firmware": "1.0", "clock": "ntp", "backlog": -1, "printers_seen": 0,
                           "printers_reported": 0})
    assert vendor_accepts(store) == [] and store.refused()[0]["kind"] == "status"
    assert store.add_status(BOX, {"firmware": "1.0", "clock": "ntp", "backlog": 0, "printers_seen": 0,
                                  "printers_reported": 0})                # a refused one does not block the next
    assert vendor_accepts(store) == ["status"]


def _poll_all(sim: Simulator, names: list[str]) -> dict[str, PollResult]:
    async def go() -> dict[str, PollResult]:
        client = SnmpClient()
        out = {}
        try:
            for name in names:
                target = Target(sim.host, sim.port, Credential(community=Secret(name)), timeout=3)
                try:
                    out[name] = await read_printer(client, target, strict=False)
                except MeterboxError:
                    continue
        finally:
            client.close()
        return out
    return asyncio.run(go())


def test_every_recording_polled_gives_payloads_the_vendor_accepts(printers: Simulator, tmp_path: Path) -> None:
    """Each shared recording, polled over SNMP and stored as the daemon stores it, passes the vendor's ingest."""
    names = sorted(p.stem for p in PRINTERS.glob("*.snmprec") if "@" not in p.stem)
    results = _poll_all(printers, names)
    assert len(results) >= len(names) - 5, sorted(set(names) - set(results))
    store = Store(tmp_path / "meterbox.db")
    with_serial = {n: r for n, r in results.items() if r.device.serial}
    store.add_readings(BOX, [(r.device, r.reading) for r in with_serial.values()])
    try:
        kinds = vendor_accepts(store)
    except ContractError as err:
        raise AssertionError(f"the vendor refuses a payload: {err}") from None
    assert store.refused() == []
    assert kinds.count("readings") == len(with_serial) and kinds.count("devices") == len({
        r.device.serial for r in with_serial.values()})
