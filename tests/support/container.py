"""A Debian 12 system booted under systemd-nspawn, with meterbox installed by image/install.sh.

The root file system comes from mmdebstrap (PITFALLS.md: about 30 s from the Debian mirror) and
is built once per test session; each Container unpacks it afresh and removes it afterwards, even
when the test fails. It shares the host's network, so the daemon inside reaches snmpsim on
127.0.0.1. Commands run inside through nsenter into the container's init.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .process import log_tail, spawn, terminate

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = "systemd,systemd-sysv,dbus,python3,python3-venv,python3-systemd"


def missing() -> str | None:
    """What this machine lacks to boot a container, in words, or None."""
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("systemd-nspawn", "systemd-container"),
                          ("nsenter", "util-linux")):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install {package})"
    if os.geteuid() != 0:
        return "booting a container needs root"
    return None


def build_rootfs(cache: Path) -> Path:
    """rootfs.tar of Debian 12 minbase with systemd and Python (once per session: cached in CACHE)."""
    tar = cache / "rootfs.tar"
    if not tar.exists():
        part = cache / "rootfs-part.tar"  # mmdebstrap picks the format from the name's ending
        result = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                                 str(part)], capture_output=True, text=True, timeout=900)
        if result.returncode:
            raise RuntimeError(f"mmdebstrap failed ({result.returncode}): {result.stderr[-2000:]}")
        part.rename(tar)
    return tar


def build_wheels(cache: Path) -> Path:
    """The meterbox wheel and its dependencies' wheels, for pip inside the container (no index there)."""
    wheels = cache / "wheels"
    if not any(wheels.glob("meterbox-*.whl")):
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheels), str(ROOT)],
                                capture_output=True, text=True, timeout=900)
        if result.returncode:
            raise RuntimeError(f"pip wheel failed: {result.stderr[-2000:]}")
    return wheels


class Container:
    """Unpack, install meterbox, boot; `run()` a command inside; `close()` powers off and removes the tree."""

    def __init__(self, rootfs_tar: Path, wheels: Path, work: Path) -> None:
        self.work = work
        self.dir = work / "root"
        self.log_path = work / "nspawn.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.dir.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(rootfs_tar), "-C", str(self.dir)], check=True, timeout=300)
        install = self.dir / "root" / "install"
        shutil.copytree(wheels, install / "wheels")
        shutil.copytree(ROOT / "image", install / "image")

    def install(self) -> str:
        """image/install.sh inside the (not yet booted) tree: as on a Raspberry Pi OS image."""
        result = subprocess.run(["systemd-nspawn", "--quiet", "-D", str(self.dir), "--register=no", "--keep-unit",
                                 "--pipe", "/bin/sh", "/root/install/image/install.sh", "/root/install/wheels"],
                                capture_output=True, text=True, timeout=600)
        if result.returncode:
            raise RuntimeError(f"install.sh failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
        return result.stdout

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.dir / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def boot(self, timeout: float = 90.0) -> None:
        """systemd-nspawn -b; returns once `systemctl is-system-running` says running (or degraded)."""
        self.proc = spawn(["systemd-nspawn", "-D", str(self.dir), "-b", "--register=no", "--keep-unit",
                           "--console=passive"], self.log_path)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if not self._is_init(self.pid):   # nspawn forks a helper first: the init may not be there yet
                self.pid = self._init_pid()
            if self.pid:
                state = self.run("systemctl", "is-system-running", check=False).strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        exited = self.proc.poll()
        raise RuntimeError(f"the container did not boot (state {state or 'unknown'}, init pid {self.pid}, "
                           f"systemd-nspawn {'exited ' + str(exited) if exited is not None else 'running'}):\n"
                           f"{log_tail(self.log_path, 30)}")

    def _init_pid(self) -> int | None:
        """The container's init: the child of systemd-nspawn that runs systemd."""
        assert self.proc is not None
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            try:
                children = task.read_text().split()
            except OSError:
                continue
            for child in children:
                if self._is_init(int(child)):
                    return int(child)
        return None

    @staticmethod
    def _is_init(pid: int | None) -> bool:
        try:
            return pid is not None and Path(f"/proc/{pid}/comm").read_text().strip() == "systemd"
        except OSError:
            return False

    def run(self, *argv: str, check: bool = True, timeout: float = 60.0) -> str:
        """A command inside the booted container; its stdout."""
        assert self.pid is not None, "boot() first"
        result = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *argv], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stdout}{result.stderr}")
        return result.stdout

    def close(self) -> None:
        """Power off, and remove the tree whatever happened."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                if self.pid:
                    subprocess.run(["nsenter", "-t", str(self.pid), "-a", "systemctl", "poweroff"],
                                   capture_output=True, timeout=30)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    terminate(self.proc)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
