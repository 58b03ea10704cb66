"""A file system of the test's own (tmpfs): small to fill up, or remounted read-only like a worn SD card."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tmpfs(where: Path, options: str = "size=64m") -> Iterator[None]:
    """Mount a tmpfs at WHERE with OPTIONS (e.g. "size=2m", "size=4m,ro"); removed even when the test fails."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only(where: Path) -> None:
    """The card wears out: the file system at WHERE turns read-only under a running box."""
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
