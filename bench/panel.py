"""Benchmark: what the panel costs the box. RSS it adds, and CPU while it shows each LED state.

Run:  .venv/bin/python bench/panel.py [--seconds 10]

The panel runs on gpiozero's MockFactory (the same code as on a Pi; the real pin libraries'
own cost is not in it). RSS: /proc/self/status VmRSS in a fresh process, after the daemon's
own imports (meterbox.box.daemon: pysnmp, paho, ...) and before/after importing gpiozero and
making a Panel; CPU:
process time over --seconds while the panel shows one state (steady states run no thread;
blinking ones wake gpiozero's blink thread at each edge).
Targets (issue 10, PERFORMANCE.md P4): the panel adds <= 5 MB RSS; idle CPU < 1 % of a core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, logging, resource, sys, threading, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
bare = rss()
import meterbox.box.daemon  # the box's own process: what the panel adds comes on top of this
before = rss()
from gpiozero.pins.mock import MockFactory
from meterbox.box.legend import Legend
from meterbox.box.panel import Panel
from meterbox.box.pins import PinMap
from meterbox.box.state import BoxState
loop = asyncio.new_event_loop()
panel = Panel(PinMap.load(), Legend.load(), loop, on_press=lambda: None, on_hold=lambda: None,
              pin_factory=MockFactory())
panel.show(BoxState(uploads_ok=True))
after = rss()
states = {"running (green steady)": BoxState(uploads_ok=True), "unclaimed (slow blink)": BoxState(unclaimed=True),
          "backlog (flicker)": BoxState(sending_backlog=True, uploads_ok=True),
          "fault: 6 red blinks": BoxState(fault="clock"), "paused (amber steady)": BoxState(paused=True)}
cpu = {}
seconds = float(sys.argv[1])
for name, state in states.items():
    panel.show(state)
    start_cpu, start = time.process_time(), time.monotonic()
    threading.Event().wait(seconds)
    cpu[name] = 100 * (time.process_time() - start_cpu) / (time.monotonic() - start)
panel.close()
print(json.dumps({"rss_bare_kb": bare, "rss_before_kb": before, "rss_after_kb": after, "cpu_percent": cpu}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per state (default 10)")
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=args.seconds * 10 + 60)
    result = json.loads(out.stdout)
    added = (result["rss_after_kb"] - result["rss_before_kb"]) / 1024
    print(f"panel RSS: {added:.1f} MB added to the daemon's process (gpiozero, the panel's modules, the "
          f"Panel; {result['rss_before_kb'] / 1024:.1f} -> {result['rss_after_kb'] / 1024:.1f} MB); "
          f"target <= 5 MB: {'ok' if added <= 5 else 'OVER'}")
    for name, percent in result["cpu_percent"].items():
        print(f"  CPU showing {name:<26} {percent:6.3f} % of a core; target < 1 %: "
              f"{'ok' if percent < 1 else 'OVER'}")
    print(f"measured {time.strftime('%Y-%m-%d %H:%M')} on {Path('/proc/cpuinfo').read_text().count('processor')} "
          "cores, mock pins")


if __name__ == "__main__":
    main()
