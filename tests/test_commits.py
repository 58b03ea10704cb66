"""The commit buffer on a disk that fills up and frees again: what it says is what happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from meterbox.outbox.commits import CommitBuffer
from meterbox.outbox.store import Store
from meterbox.outbox.worker import StoreWorker
from meterbox.printers.reading import Device, Meter, Reading

BOX = "MB-7F3A9C"


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[None]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(path: Path) -> None:
    """Something else takes every free block."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass


def test_after_a_full_disk_the_readings_written_back_are_counted_right(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    taken = iter(range(1_000))

    def poll(buffer: CommitBuffer, count: int) -> list[str]:
        readings = [Reading("SER1", 1_780_000_000 + next(taken), [Meter("impressions.total", 5, "impressions")])
                    for _ in range(count)]
        for r in readings:
            buffer.add(Device("SER1", "Acme", "Laser"), r)
        return [r.id for r in readings]

    async def run(worker: StoreWorker) -> list[str]:
        buffer = CommitBuffer(worker, BOX, max_bytes=64 << 20)
        ids = poll(buffer, 2)
        await buffer.flush()
        assert buffer.error is None
        fill_up(state / "filler")
        ids += poll(buffer, 5)             # the disk is full: 5, then 3 more, wait in memory
        await buffer.flush()
        assert buffer.error and "the disk is full" in buffer.error
        ids += poll(buffer, 3)
        await buffer.flush()
        (state / "filler").unlink()
        ids += poll(buffer, 2)             # polled once there is space again: never waited
        await buffer.flush()
        assert buffer.error is None
        return ids

    with small_disk(state, "1m"), caplog.at_level(logging.INFO, logger="meterbox.outbox.commits"):
        worker = StoreWorker(Store(state / "meterbox.db"))
        try:
            ids = asyncio.run(run(worker))
        finally:
            worker.close()
        store = Store(state / "meterbox.db")
        stored = [m.id for m in store.messages("reading")]
        store.close()
    assert stored == ids                   # all twelve, in order
    said = [r.getMessage() for r in caplog.records if "written again" in r.getMessage()]
    assert len(said) == 1, said
    assert re.search(r"; 8 readings kept in memory meanwhile are stored", said[0]), said


def test_a_store_error_that_is_not_a_full_disk_keeps_the_readings_and_the_commits_going(tmp_path: Path) -> None:
    """A table the commit reads goes missing: the commit fails with a raw SQLite error (not through a
    write transaction); the readings stay in memory, the error is said, and once the table is back
    they are committed: the commit task did not die."""
    store = Store(tmp_path / "meterbox.db")
    worker = StoreWorker(store)
    buffer = CommitBuffer(worker, BOX, max_bytes=64 * 2**20)

    async def main() -> tuple[str | None, int, int]:
        task = asyncio.create_task(buffer.run())
        await worker.call(lambda s: s.db.execute("ALTER TABLE devices RENAME TO devices_gone"))
        for i in range(5):
            buffer.add(Device("SER1", "Acme", "Laser"),
                       Reading("SER1", 1.7e9 + i, [Meter("impressions.total", i, "impressions")]))
        while buffer.error is None:
            await asyncio.sleep(0.05)
        error, waiting = buffer.error, len(buffer.readings)
        await worker.call(lambda s: s.db.execute("ALTER TABLE devices_gone RENAME TO devices"))
        while buffer.error is not None or buffer.readings:
            await asyncio.sleep(0.05)
        task.cancel()
        return error, waiting, await worker.call(Store.backlog)

    error, waiting, backlog = asyncio.run(asyncio.wait_for(main(), 20))
    worker.close()
    assert error and "store" in error and waiting == 5
    assert backlog == 6   # five readings and the printer's announcement, none lost
