"""Live demo: simulated printers -> the box daemon -> Mosquitto over mutual TLS -> the vendor's ingest.

Run:  .venv/bin/python tests/demo.py [--seconds N] [--interval 5s]

Everything is real and local: snmpsim serves real printer recordings on 127.0.0.1-8,
Mosquitto requires client certificates minted for this run, `meterbox run` polls and
uploads, and the vendor's ingest (cloud/meterbox_cloud/ingest.py) validates each
message against the wire contract and prints it as it arrives. The printers "print"
while the demo runs, so the meters grow. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from meterbox_cloud.ingest import Ingest  # noqa: E402
from support import in_ci  # noqa: E402,F401
from support.broker import Broker  # noqa: E402
from support.daemon import BOX_ID, BoxConfig, Daemon, PrinterEntry  # noqa: E402
from support.pki import Pki  # noqa: E402
from support.process import free_udp_port  # noqa: E402
from support.snmpsim import Simulator  # noqa: E402

# recordings (tests/printers), one simulated printer per loopback address: six real
# printers and two built from vendor MIB documentation (Xerox and Ricoh billing counters)
PRINTERS = ["jetdirect_m130nw", "konica_c250i", "kyocera_cs-4053ci", "sharp", "brother_hl5370dw",
            "epson", "xerox_altalink_synthetic", "ricoh_mpc_synthetic"]
LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4.1.1"
FIRST = {"impressions.total": 0, "marker.life": 1, "impressions.black": 2, "impressions.color": 3}


def show_box_log(daemon: Daemon, stop: threading.Event) -> None:
    """Echo the daemon's log lines as they are written, prefixed 'box |'."""
    seen = 0
    while not stop.is_set():
        lines = daemon.log().splitlines()
        for line in lines[seen:]:
            print(f"  box | {line}", flush=True)
        seen = len(lines)
        stop.wait(0.3)


def printer_activity(sim: Simulator, stop: threading.Event, every: float) -> None:
    """The simulated offices print: marker life counts grow between polls."""
    counts: dict[str, int] = {}
    for name in PRINTERS:
        for line in sim.recording(name).read_text(encoding="latin-1").splitlines():
            if line.startswith(LIFE_COUNT + "|"):
                counts[name] = int(line.rsplit("|", 1)[1])
    while not stop.wait(every):
        for name in counts:
            counts[name] += 7 + hash((name, time.time())) % 40
            sim.set_values(name, {LIFE_COUNT: counts[name]})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0, help="stop after N seconds (default: until Ctrl-C)")
    p.add_argument("--interval", default="5s", help="poll interval of the box (default 5s)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meterbox-demo-"))
    names: dict[str, str] = {}

    def on_message(box: str, kind: str, body: dict[str, Any]) -> None:
        if kind == "devices":
            names[body["serial"]] = f"{body['manufacturer'] or ''} {body['model'] or ''}".strip()
            print(f"vendor | new printer {body['serial']}: {names[body['serial']]}", flush=True)
            return
        if kind == "status":
            print(f"vendor | box {box} is healthy: firmware {body['firmware']}, backlog {body['backlog']}, "
                  f"{body['printers_reported']} of {body['printers_seen']} printers reported", flush=True)
            return
        shown = sorted(body["meters"], key=lambda m: (m["name"] not in FIRST, FIRST.get(m["name"], 0)))[:3]
        meters = ", ".join(f"{m['name']} {m['value']:,}" for m in shown) or "no meters"
        supplies = ", ".join(f"{s['name']} {s['level'] if s['level'] is not None else '-'}%"
                             for s in body["supplies"][:4])
        print(f"vendor | {body['read_at']} {body['serial']:<15} {names.get(body['serial'], ''):<28} "
              f"{meters}; {supplies}", flush=True)

    pki = Pki(work / "pki")
    port = free_udp_port()
    endpoints = [(f"127.0.0.{i + 1}", port) for i in range(len(PRINTERS))]
    stop = threading.Event()
    with Simulator.with_recordings(PRINTERS, work / "printers", endpoints=endpoints) as sim, \
            Broker(pki, work_dir=work / "broker") as broker:
        ingest_cert = broker.ingest_cert
        ingest = Ingest(broker.host, broker.port, broker.ca_file, ingest_cert.cert, ingest_cert.key, on_message)
        ingest.start()
        box = BoxConfig(state_dir=work / "state", broker=broker, interval=args.interval, timeout="2s",
                        printers=[PrinterEntry(a, n) for a, n in zip(sim.addresses, PRINTERS)])
        config = box.write(work / "meterbox.toml")
        print(f"demo: {len(PRINTERS)} simulated printers on {sim.addresses[0]} .. {sim.addresses[-1]}, "
              f"broker {broker.address} (mutual TLS), box {BOX_ID}\n"
              f"demo: try  .venv/bin/meterbox status --config {config}\n"
              f"      and  .venv/bin/meterbox sent --config {config}\n", flush=True)
        with Daemon(config, work) as daemon:
            threads = [threading.Thread(target=show_box_log, args=(daemon, stop), daemon=True),
                       threading.Thread(target=printer_activity, args=(sim, stop, 4.0), daemon=True)]
            for t in threads:
                t.start()
            try:
                deadline = time.monotonic() + args.seconds if args.seconds else None
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            stop.set()
        ingest.stop()
        books = ingest.books
        print(f"\ndemo: the vendor accepted {len(books.accepted)} messages "
              f"({books.duplicates} duplicates dropped, {books.rejected} rejected)")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if books.accepted and not books.rejected else 1


if __name__ == "__main__":
    raise SystemExit(main())
