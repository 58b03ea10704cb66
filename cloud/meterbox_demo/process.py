"""Start and stop helper processes so that none outlives its test.

Each process gets its own session (process group), so stopping it also stops
anything it forked, and PR_SET_PDEATHSIG so it dies with the test run even when
pytest itself is killed (CI timeout) and no ``__exit__`` runs.
"""

from __future__ import annotations

import ctypes
import shutil
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

_PR_SET_PDEATHSIG = 1
_S = TypeVar("_S", bound="Service")


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when its parent thread exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: cleanup still happens on exit
        pass


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session; stdout and stderr are appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def terminate(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Send ``sig`` to the process group, then SIGKILL it if it has not exited in time.

    Returns True when the leader had to be killed (it ignored ``sig`` for ``timeout`` seconds).
    """
    forced = False
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            forced = sig != signal.SIGKILL
    # Whatever the leader did, nothing of the group may survive it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return forced


def log_tail(log_path: Path, lines: int = 30) -> str:
    """The end of a process log, for error messages that say why a start failed."""
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free on ``host`` a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Service:
    """A test service used as a context manager: started on enter, stopped on exit (even on failure).

    Subclasses give start() and stop(); one that made its own temporary work_dir (_own_work_dir)
    has it removed after stopping.
    """

    work_dir: Path
    _own_work_dir: bool = False

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
