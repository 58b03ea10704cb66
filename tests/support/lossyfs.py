"""A disk that loses what was not fsync'd when the power goes: a FUSE file system for the power-cut test.

Modelled on LazyFS (dsrhaslab/lazyfs, "clear-cache" fault): file data written through the
mount stays in this process's memory, the volatile page cache, until the file is fsync'd
(fsync or fdatasync); only then does it reach the backing directory, the "platter". A cut
drops every unsynced write (and truncation) of every file, then the mount is made anew, so
neither this process nor the kernel's page cache keeps anything the platter has not got.
Creating, renaming and deleting files reach the platter at once (as on a journalled file
system after its next commit; SQLite's WAL does not depend on more).

The test runs `python -m support.lossyfs PLATTER MOUNT STATS` in a process of its own; writing
anything to MOUNT/.powercut drops the unsynced data and writes what was dropped to STATS
as JSON. `LossyDisk` does all of that.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

CONTROL = "/.powercut"
Op = tuple[str, int, bytes]   # ("w", offset, data) or ("t", length, b"")


class LossyDisk:
    """Mount a lossy file system at MOUNT over PLATTER; `cut()` is the power cut."""

    def __init__(self, platter: Path, mount: Path) -> None:
        self.platter, self.mount = platter, mount
        self.stats_path = platter.parent / f"{platter.name}.cut.json"
        self.log_path = platter.parent / f"{platter.name}.fuse.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LossyDisk:
        self.platter.mkdir(parents=True, exist_ok=True)
        self.mount.mkdir(parents=True, exist_ok=True)
        self._mount()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._unmount()

    def cut(self) -> dict[str, int]:
        """Power cut: every write not fsync'd is gone; returns what was dropped (writes, bytes, files)."""
        self.stats_path.unlink(missing_ok=True)
        with open(self.mount / CONTROL.lstrip("/"), "wb", buffering=0) as control:
            control.write(b"cut")
        dropped: dict[str, int] = json.loads(self.stats_path.read_text())
        self._unmount()   # the kernel's page cache of the mount goes with it
        self._mount()
        return dropped

    def _mount(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "support.lossyfs", str(self.platter),
                                          str(self.mount), str(self.stats_path)],
                                         cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mount):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the lossy file system did not mount at {self.mount}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def _unmount(self) -> None:
        if os.path.ismount(self.mount):
            subprocess.run(["fusermount", "-u", "-z", str(self.mount)], check=False)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _operations() -> Any:
    """The FUSE operations (imported late: mfusepy loads libfuse when imported)."""
    from mfusepy import FuseOSError, Operations

    class Lossy(Operations):  # type: ignore[misc]
        use_ns = True

        def __init__(self, platter: str, stats: str) -> None:
            self.platter, self.stats = platter, stats
            self.pending: dict[str, list[Op]] = {}
            self.fds: dict[int, int] = {}
            self.next_fh = 1

        def _real(self, path: str) -> str:
            return os.path.join(self.platter, path.lstrip("/"))

        def _call(self, fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except OSError as err:
                raise FuseOSError(err.errno or errno.EIO) from None

        # --- files and directories: straight to the platter --------------------------
        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            if path == CONTROL:
                return {"st_mode": 0o100600, "st_nlink": 1, "st_size": 0}
            st = self._call(os.lstat, self._real(path))
            attrs = {key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                                                       "st_atime_ns", "st_mtime_ns", "st_ctime_ns")}
            for key in ("st_atime", "st_mtime", "st_ctime"):
                attrs[key] = attrs.pop(f"{key}_ns")
            if path in self.pending:
                attrs["st_size"] = self._size(path, st.st_size)
            return attrs

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *self._call(os.listdir, self._real(path))]

        def access(self, path: str, mode: int) -> int:
            return 0 if path == CONTROL or os.access(self._real(path), mode) else -errno.EACCES

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(self.platter)
            return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                      "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

        def mkdir(self, path: str, mode: int) -> int:
            return int(self._call(os.mkdir, self._real(path), mode) or 0)

        def rmdir(self, path: str) -> int:
            return int(self._call(os.rmdir, self._real(path)) or 0)

        def unlink(self, path: str) -> int:
            self.pending.pop(path, None)
            return int(self._call(os.unlink, self._real(path)) or 0)

        def rename(self, old: str, new: str) -> int:
            self._call(os.rename, self._real(old), self._real(new))
            if old in self.pending:
                self.pending[new] = self.pending.pop(old)
            else:
                self.pending.pop(new, None)
            return 0

        def chmod(self, path: str, mode: int) -> int:
            return int(self._call(os.chmod, self._real(path), mode) or 0)

        def chown(self, path: str, uid: int, gid: int) -> int:
            return int(self._call(os.chown, self._real(path), uid, gid) or 0)

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            if path != CONTROL:
                if times is None:
                    self._call(os.utime, self._real(path))
                else:
                    self._call(lambda: os.utime(self._real(path), ns=times))
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            return 0   # names reach the platter at once

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            if path == CONTROL:
                return 0
            self._call(os.close, self._call(os.open, self._real(path), os.O_WRONLY | os.O_CREAT, mode))
            return self.open(path, os.O_RDWR)

        def open(self, path: str, flags: int) -> int:
            if path == CONTROL:
                return 0
            fh, self.next_fh = self.next_fh, self.next_fh + 1
            self.fds[fh] = self._call(os.open, self._real(path), os.O_RDONLY)
            if flags & os.O_TRUNC:
                self.pending.setdefault(path, []).append(("t", 0, b""))
            return fh

        def release(self, path: str, fh: int) -> int:
            fd = self.fds.pop(fh, None)
            if fd is not None:
                os.close(fd)
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0   # close() is not fsync()

        # --- data: in memory until fsync -----------------------------------------------
        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if path == CONTROL:
                self._cut()
                return len(data)
            self.pending.setdefault(path, []).append(("w", offset, bytes(data)))
            return len(data)

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            if path != CONTROL:
                self.pending.setdefault(path, []).append(("t", length, b""))
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            fd = self.fds.get(fh)
            if fd is None:
                return b""
            buf = bytearray(os.pread(fd, size, offset))
            logical = os.fstat(fd).st_size
            if path not in self.pending:
                return bytes(buf)
            buf.extend(bytes(size - len(buf)))
            for kind, at, data in self.pending[path]:
                if kind == "w":
                    lo, hi = max(at, offset), min(at + len(data), offset + size)
                    if lo < hi:
                        buf[lo - offset:hi - offset] = data[lo - at:hi - at]
                    logical = max(logical, at + len(data))
                else:
                    if at < offset + size:
                        start = max(at, offset) - offset
                        buf[start:] = bytes(size - start)
                    logical = at
            return bytes(buf[:max(0, min(size, logical - offset))])

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            ops = self.pending.pop(path, [])
            if not ops:
                return 0
            fd = self._call(os.open, self._real(path), os.O_WRONLY)
            try:
                for kind, at, data in ops:
                    if kind == "w":
                        os.pwrite(fd, data, at)
                    else:
                        os.ftruncate(fd, at)
                os.fsync(fd)
            finally:
                os.close(fd)
            return 0

        def _size(self, path: str, size: int) -> int:
            for kind, at, data in self.pending.get(path, []):
                size = max(size, at + len(data)) if kind == "w" else at
            return size

        def _cut(self) -> None:
            ops = [op for ops in self.pending.values() for op in ops]
            dropped = {"writes": sum(op[0] == "w" for op in ops), "bytes": sum(len(op[2]) for op in ops),
                       "files": len(self.pending)}
            self.pending.clear()
            with open(self.stats, "w") as out:
                json.dump(dropped, out)

    return Lossy


def main(platter: str, mount: str, stats: str) -> None:
    from mfusepy import FUSE

    FUSE(_operations()(platter, stats), mount, foreground=True, nothreads=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
