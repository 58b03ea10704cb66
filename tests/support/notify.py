"""A NOTIFY_SOCKET the test owns: the AF_UNIX datagram socket systemd would listen on (sd_notify(3))."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    """Receives sd_notify datagrams in a thread and keeps (monotonic time, line) for each line."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, OSError):
                continue
            now = time.monotonic()
            with self._changed:
                self.received += [(now, line) for line in data.decode().splitlines()]
                self._changed.notify_all()

    def lines(self, prefix: str) -> list[tuple[float, str]]:
        with self._changed:
            return [(t, line) for t, line in self.received if line.startswith(prefix)]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 15.0) -> list[tuple[float, str]]:
        """The lines starting with PREFIX once there are COUNT of them; AssertionError after TIMEOUT."""
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.lines(prefix)) >= count, timeout)
        if not ok:
            raise AssertionError(f"{count} × {prefix!r} not received in {timeout} s; got {self.received[-10:]}")
        return self.lines(prefix)

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "NotifySocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
