"""image/meterbox.service: verified on the host, then run by a real systemd in a booted Debian 12 container."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import require
from support.container import Container, build_rootfs, build_wheels, missing
from support.snmpsim import Simulator

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG = 3  # seconds, in the test's drop-in: a frozen daemon is restarted within a few seconds


def test_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` with the unit installed in a root that has the real ExecStart."""
    require("systemd-analyze", "apt-get install systemd")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    # Copies, not links: verify resolves links inside --root.
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "opt/meterbox/bin").mkdir(parents=True)
    shutil.copy2(Path(sys.executable).parent / "meterbox", root / "opt/meterbox/bin/meterbox")
    (root / "etc/systemd/system/meterbox.service").write_text((ROOT / "image/meterbox.service").read_text())
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "meterbox.service"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.fixture(scope="session")
def container_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(rootfs.tar, wheel dir), built once per session."""
    why = missing()
    require(why is None, why or "")
    cache = tmp_path_factory.mktemp("container-cache")
    return build_rootfs(cache), build_wheels(cache)


@pytest.fixture
def box(container_parts: tuple[Path, Path], printers: Simulator, tmp_path: Path) -> Iterator[Container]:
    """A booted Debian 12 with meterbox installed by image/install.sh, polling one snmpsim printer."""
    tar, wheels = container_parts
    container = Container(tar, wheels, tmp_path)
    try:
        container.install()
        container.write("/etc/meterbox/meterbox.toml", "\n".join([
            "[box]", 'id = "MB-7F3A9C"', "[poll]", 'interval = "2s"', 'timeout = "500ms"',
            "[[printers]]", f'host = "{printers.address}"', 'community = "jetdirect_m130nw"',
            "[discovery]", "enabled = false", ""]), mode=0o644)
        container.write("/etc/systemd/system/meterbox.service.d/test.conf",
                        f"[Service]\nWatchdogSec={WATCHDOG}s\nRestartSec=1s\n")
        container.boot()
        yield container
    finally:
        container.close()
    assert not container.dir.exists()


def wait(check: Callable[[], bool], what: str, box: Container, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            journal = box.run("journalctl", "-u", "meterbox", "--no-pager", "-n", "40", check=False)
            raise AssertionError(f"{what} did not happen in {timeout} s:\n{journal}")
        time.sleep(0.5)


def show(box: Container, prop: str) -> str:
    return box.run("systemctl", "show", "-p", prop, "--value", "meterbox").strip()


def test_the_unit_under_systemd(box: Container) -> None:
    """Active once READY=1; the journal has our fields; SIGSTOP → watchdog → restart; exposure ≤ 2.0."""
    wait(lambda: box.run("systemctl", "is-active", "meterbox", check=False).strip() == "active", "active", box)
    status = box.run("systemctl", "status", "meterbox", "--no-pager", check=False)
    assert re.search(r"Status: \"polling 1 printer, \d+ waiting, last upload", status), status

    def entries() -> list[dict[str, str]]:
        out = box.run("journalctl", "-o", "json", "-u", "meterbox", "--no-pager")
        return [json.loads(line) for line in out.splitlines() if line.strip()]
    wait(lambda: any("METERBOX_SERIAL" in e for e in entries()), "a log entry with METERBOX_SERIAL", box)
    ours = [e for e in entries() if e.get("SYSLOG_IDENTIFIER") == "meterbox"]
    ready = [e for e in ours if e.get("METERBOX_EVENT") == "ready"]
    assert ready and ready[0]["PRIORITY"] == "6" and ready[0]["LOGGER"] == "meterbox.box.service"

    pid, restarts = show(box, "MainPID"), int(show(box, "NRestarts"))
    box.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", "meterbox")
    wait(lambda: int(show(box, "NRestarts")) > restarts and show(box, "ActiveState") == "active"
         and show(box, "MainPID") not in ("0", pid), "a restart by the watchdog", box, timeout=WATCHDOG * 2 + 30)
    log = box.run("journalctl", "-u", "meterbox", "--no-pager")
    assert "Watchdog timeout" in log, log[-2000:]

    security = box.run("systemd-analyze", "security", "meterbox.service", "--no-pager", check=False)
    exposure = float(re.search(r"Overall exposure level for meterbox.service: ([\d.]+)", security).group(1))
    print(f"systemd-analyze security meterbox.service: {exposure} exposure")
    assert exposure <= 2.0, security
