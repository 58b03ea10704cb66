"""A real HTTP CONNECT proxy in the path: Debian's tinyproxy, with Basic authentication.

Like an office proxy it allows CONNECT only to the ports it is told (``connect_ports``:
443 in offices; the broker's WebSockets port in tests), asks for a user name and
password, and logs each CONNECT, so a test can see that traffic really went through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .process import free_tcp_port, log_tail, spawn, terminate

__all__ = ["Proxy", "INSTALL_TINYPROXY"]

INSTALL_TINYPROXY = "apt-get install tinyproxy"


class Proxy:
    """``tinyproxy -d`` on 127.0.0.1:<free port>; use it as a context manager."""

    def __init__(self, *, connect_ports: list[int], user: str = "meterbox", password: str = "proxy-secret",
                 work_dir: Path | None = None) -> None:
        self.user, self.password = user, password
        self.host = "127.0.0.1"
        self.port = free_tcp_port(self.host)
        # tinyproxy drops to nobody before it opens its log: pytest's own directories (0700)
        # are closed to it, so it runs in a directory of its own; the log is copied to
        # WORK_DIR (if given) when it stops.
        self.work_dir = Path(tempfile.mkdtemp(prefix="tinyproxy-"))
        self.work_dir.chmod(0o777)
        self.keep_dir = work_dir
        self.log_path = self.work_dir / "tinyproxy.log"
        self.conf_path = self.work_dir / "tinyproxy.conf"
        lines = ["User nobody", "Group nogroup", f"Port {self.port}", f"Listen {self.host}", "Timeout 60",
                 "LogLevel Info", f'LogFile "{self.log_path}"', f'PidFile "{self.work_dir}/tinyproxy.pid"',
                 "MaxClients 50", "Allow 127.0.0.1", f"BasicAuth {user} {password}",
                 *(f"ConnectPort {p}" for p in connect_ports)]
        self.conf_path.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, *, user: str | None = None, password: str | None = None) -> str:
        """The proxy URL for uplink.proxy, with these (or the right) credentials."""
        return f"http://{user or self.user}:{password or self.password}@{self.host}:{self.port}"

    def __enter__(self) -> Proxy:
        self._proc = spawn(["tinyproxy", "-d", "-c", self.conf_path], self.work_dir / "stdout.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"tinyproxy did not start:\n{log_tail(self.log_path)}") from None
                time.sleep(0.05)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is not None:
            terminate(self._proc)
            self._proc = None
        if self.keep_dir is not None and self.log_path.exists():
            self.keep_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log_path, self.keep_dir / "tinyproxy.log")
            self.log_path = self.keep_dir / "tinyproxy.log"
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
