"""The README's first command, run as a user runs it: `meterbox-demo --auto-claim`.

Readings flow from the simulated printers through the box and the broker into the vendor's
books, and stopping it (Ctrl-C, or `kill` as a service manager does) stops every part: nothing
is left running, and it says what the vendor stored."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import INSTALL_MOSQUITTO, require

DEMO = Path(sys.executable).with_name("meterbox-demo")


def left_running(marker: str) -> list[str]:
    """Command lines of the processes that still mention MARKER (the demo's work folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def billed_meters_grow(text: str) -> bool:
    """The vendor's books show impressions.total growing for every printer that has one (the
    offices print, and each printer's billing meters grow together, as a real one's do)."""
    totals: dict[str, set[int]] = {}
    for line in text.splitlines():
        if line.startswith("vendor |") and (found := re.search(r"^vendor \| \S+ \S+ (\S+) .* impressions\.total "
                                                                r"([\d,]+)", line)):
            totals.setdefault(found[1], set()).add(int(found[2].replace(",", "")))
    return len(totals) >= 5 and all(len(values) >= 2 for values in totals.values())


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_the_demo_shows_readings_at_the_vendor_and_stops_every_part(tmp_path: Path, stop: int) -> None:
    require("mosquitto", INSTALL_MOSQUITTO)
    work = tmp_path / "demo"
    out = tmp_path / "demo.out"
    with open(out, "wb") as sink:
        demo = subprocess.Popen([DEMO, "--auto-claim", "--interval", "2s", "--work", work],
                                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while sum(line.startswith("vendor |") for line in out.read_text(errors="replace").splitlines()) < 16 \
                or not billed_meters_grow(out.read_text(errors="replace")):
            assert demo.poll() is None, f"the demo ended early:\n{out.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"no readings at the vendor:\n{out.read_text(errors='replace')[-3000:]}"
            time.sleep(0.2)
        demo.send_signal(stop)
        code = demo.wait(60)
    finally:
        if demo.poll() is None:
            demo.kill()
    text = out.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "claimed for 'Demo office'" in text and "uplink: connected" in text
    stored = [line for line in text.splitlines() if "the vendor stored" in line]
    assert stored and "(0 rejected)" in stored[-1], text[-2000:]
    assert int(stored[-1].split("the vendor stored ")[1].split()[0]) >= 16
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]
    deadline = time.monotonic() + 10          # children stopped by the demo's process group clean-up
    while (left := left_running(str(work))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "left running after the demo stopped:\n" + "\n".join(left)
