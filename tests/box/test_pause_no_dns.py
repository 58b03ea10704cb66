"""Paused means no contact with the vendor at all, not even a DNS look-up of its broker's name.

The box runs in a network namespace of its own whose resolver is a DNS server of the test that
counts every name asked; a simulated printer answers there too. While paused the box polls and
stores, and asks DNS nothing; resumed, it looks the broker up at once (so the counter works).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import PRINTERS, require
from support.cli import run_cli
from support.daemon import store_rows
from support.loop import wait_until
from support.process import log_tail, spawn, terminate
from support.snmpsim import responder_binary

BROKER = "broker.meterbox.test"
HERE = Path(__file__).resolve().parent.parent / "support"


@pytest.fixture
def namespace() -> Iterator[str]:
    require(os.geteuid() == 0 and bool(shutil.which("ip")), "run the tests as root with iproute2 (network namespaces)")
    name = f"mbt{os.getpid()}-dns"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    etc = Path("/etc/netns") / name
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def readings(state: Path) -> int:
    rows = store_rows(state, "SELECT count(*) FROM messages WHERE kind='reading'")
    return int(rows[0][0]) if rows else 0


def test_a_paused_box_looks_up_no_name_and_a_resumed_one_does_at_once(namespace: str, tmp_path: Path,
                                                                    pki: object) -> None:
    require(responder_binary(), "pip install snmpsim (the test extra)")
    netns = ["ip", "netns", "exec", namespace]
    dns_log, box_log = tmp_path / "dns.log", tmp_path / "box.log"
    data = tmp_path / "printers"
    data.mkdir()
    shutil.copy(PRINTERS / "jetdirect_m130nw.snmprec", data)
    procs = []
    try:
        procs.append(spawn([*netns, sys.executable, HERE / "dns_counter.py", dns_log], tmp_path / "dns.out"))
        procs.append(spawn([*netns, responder_binary(), f"--data-dir={data}", "--agent-udpv4-endpoint=127.0.0.1:1161",
                            "--cache-dir", tmp_path / "cache"], tmp_path / "snmpsim.log",
                           env={"SNMPSIM_ALLOW_ROOT": "true"}))
        assert wait_until(lambda: dns_log.exists() and "listening" in dns_log.read_text(), 10)
        cert, key = pki.client("MB-7F3A9C")  # type: ignore[attr-defined]
        config = tmp_path / "meterbox.toml"
        config.write_text(f'[box]\nid = "MB-7F3A9C"\nstate_dir = "{tmp_path / "state"}"\n'
                          f'runtime_dir = "{tmp_path / "run"}"\n\n[poll]\ninterval = "300ms"\ntimeout = "500ms"\n\n'
                          '[[printers]]\nhost = "127.0.0.1:1161"\ncommunity = "jetdirect_m130nw"\n\n'
                          f'[uplink]\nhost = "{BROKER}"\nport = 8883\nca_file = "{pki.ca_cert}"\n'  # type: ignore[attr-defined]
                          f'cert_file = "{cert}"\nkey_file = "{key}"\n\n[discovery]\nenabled = false\n')
        run_cli("pause", "--config", str(config))
        clock = tmp_path / "clock.json"
        clock.write_text('{"synced": true}')
        daemon = spawn([*netns, sys.executable, "-m", "meterbox", "run", "--config", config], box_log,
                       env={"METERBOX_CLOCK_FILE": str(clock)})
        procs.append(daemon)
        assert wait_until(lambda: readings(tmp_path / "state") >= 10, 30), log_tail(box_log)
        asked = [line for line in dns_log.read_text().splitlines() if line.startswith("query")]
        assert asked == [], f"a paused box looked up {asked}"
        run_cli("resume", "--config", str(config))
        assert wait_until(lambda: f"query {BROKER}" in dns_log.read_text(), 15), log_tail(box_log)
    finally:
        for proc in reversed(procs):
            terminate(proc)
