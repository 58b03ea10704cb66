"""Run the real `meterbox run` daemon as a process, with a config the test writes.

The daemon's clock is a test clock file (METERBOX_CLOCK_FILE, see meterbox.outbox.clock) that
says "synchronised" unless the test writes otherwise with `Daemon.set_clock()`: test
machines (containers, CI) rarely run NTP, and readings wait for a synchronised clock.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .broker import Broker
from .cli import run_cli
from .pki import CertPair
from .process import log_tail, spawn, terminate

BOX_ID = "MB-7F3A9C"
STOP_TIMEOUT = 8.0   # the daemon stops in under 2 s (it logs how long); this leaves room for a loaded CI machine


def store_rows(state_dir: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on the daemon's store, read without its help; [] until the store exists.

    A starting daemon creates meterbox.db a moment before its tables, so a reader that polls
    while it starts sees a file with no tables: that is "no rows yet", not a failure."""
    db = state_dir / "meterbox.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"messages", "sent"} <= tables:
            return []
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@dataclass
class PrinterEntry:
    """One [[printers]] block."""

    address: str
    community: str


@dataclass
class BoxConfig:
    """Writes a meterbox.toml for a test: printers, a fast poll interval, the test broker."""

    state_dir: Path
    printers: list[PrinterEntry] = field(default_factory=list)
    broker: Broker | None = None
    cert: CertPair | None = None
    box_id: str = BOX_ID
    interval: str = "1s"
    timeout: str = "500ms"
    extra: str = ""
    uplink_extra: str = ""       # more [uplink] lines, e.g. 'transport = "websockets"'
    port: int | None = None      # the broker port to write (default: the broker's MQTT port)
    keepalive: str = "5s"

    def write(self, path: Path) -> Path:
        lines = ["[box]", f'id = "{self.box_id}"', f'state_dir = "{self.state_dir}"',
                 f'runtime_dir = "{self.state_dir.parent / (self.state_dir.name + "-run")}"', "",
                 "[poll]", f'interval = "{self.interval}"', f'timeout = "{self.timeout}"', "retries = 1", ""]
        for p in self.printers:
            lines += ["[[printers]]", f'host = "{p.address}"', f'community = "{p.community}"', ""]
        if self.broker is not None:
            cert, key = self.cert or self.broker.client_cert(self.box_id)
            lines += ["[uplink]", f'host = "{self.broker.host}"', f"port = {self.port or self.broker.port}",
                      f'ca_file = "{self.broker.ca_file}"', f'cert_file = "{cert}"', f'key_file = "{key}"',
                      f'keepalive = "{self.keepalive}"', self.uplink_extra, ""]
        if "[discovery]" not in self.extra:
            # Tests talk only to loopback and their own namespaces: never sweep the machine's LAN.
            lines += ["[discovery]", "enabled = false", ""]
        path.write_text("\n".join(lines) + self.extra)
        path.chmod(0o600)   # it may hold communities: as the box keeps it (`meterbox doctor` warns otherwise)
        return path


class Daemon:
    """`meterbox run --config FILE` in its own process group; stopped on exit, even on failure."""

    def __init__(self, config: Path, work_dir: Path, *, clock: dict[str, Any] | None = None) -> None:
        self.config = config
        self.log_path = work_dir / "meterbox.log"
        self.clock_path = work_dir / "clock.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self._since = 0     # where this start's output begins in the log (a restart appends to it)
        if clock is not None or not self.clock_path.exists():
            self.set_clock(**(clock or {"synced": True}))

    def set_clock(self, *, synced: bool, offset: float = 0.0, boot: str = "test-boot") -> None:
        """What the daemon's clock says: synchronised or not, OFFSET seconds from the real time, BOOT id."""
        tmp = self.clock_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"synced": synced, "offset": offset, "boot": boot}))
        tmp.replace(self.clock_path)

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.stop(check=kind is None)

    def start(self) -> None:
        self._since = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = spawn([sys.executable, "-m", "meterbox", "run", "--config", str(self.config)], self.log_path,
                          env={"METERBOX_CLOCK_FILE": str(self.clock_path)})

    def stop(self, check: bool = True) -> None:
        """SIGTERM, as systemd stops it. A daemon that must be killed fails the test (CHECK)."""
        if self.proc is not None:
            started = time.monotonic()
            forced = terminate(self.proc, signal.SIGTERM, timeout=STOP_TIMEOUT)
            self.proc = None
            if check and forced:
                raise AssertionError(f"the daemon ignored SIGTERM for {STOP_TIMEOUT:g} s and was killed "
                                     f"(systemd would have to force it):\n{log_tail(self.log_path, 30)}")
            if check and "meterbox stopped" not in self.log():
                raise AssertionError(f"the daemon did not say that it stopped ({time.monotonic() - started:.1f} s):"
                                     f"\n{log_tail(self.log_path, 30)}")

    def kill(self) -> None:
        """SIGKILL: as abrupt as a power cut for the process."""
        if self.proc is not None:
            terminate(self.proc, signal.SIGKILL)
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """What the daemon said since it was last started: an earlier run's lines never match."""
        return self._read()[self._since:].decode(errors="replace")

    def whole_log(self) -> str:
        """Every run's output in this work directory."""
        return self._read().decode(errors="replace")

    def _read(self) -> bytes:
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def wait_log(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait until the daemon's log matches PATTERN (a regex)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if m := re.search(pattern, self.log()):
                return m
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"daemon log never matched {pattern!r}:\n{log_tail(self.log_path, 40)}")

    def status(self) -> dict[str, Any]:
        return json.loads(run_cli("status", "--config", str(self.config), "--json"))

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status = self.status()
        while not predicate(status):
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched: {status}\n{log_tail(self.log_path, 40)}")
            time.sleep(0.2)
            status = self.status()
        return status
