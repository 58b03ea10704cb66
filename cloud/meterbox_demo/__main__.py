"""The live demo: the whole path from the factory to the vendor's books, on this machine.

Run:  .venv/bin/meterbox-demo [--auto-claim] [--seconds N] [--interval 5s] [--work DIR]

Every part is the product's own, started with its own commands: the vendor CA and a box minted
at the "factory" (meterbox-factory), the vendor service (claim page, enrollment API, staff
pages) and two ingest workers on a shared subscription (python -m meterbox_cloud), Mosquitto
with the configuration the vendor tooling writes (mutual TLS, per-box ACL, CRL), eight
simulated printers serving real recordings (snmpsim, tests/printers) whose counters grow,
and `meterbox run` started unconfigured, as a box comes out of its box. It prints the claim
URL and writes the label PNG; open the URL (the demo's own CA: accept the warning) and
confirm, or pass --auto-claim. Readings then appear in the vendor's database, shown here as
they arrive and on the staff page. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from meterbox_demo.process import free_tcp_port, free_udp_port, log_tail, spawn, terminate
from meterbox_demo.simulator import Simulator

PYTHON = sys.executable
# one simulated printer per loopback address: six real recordings and two built from vendor MIB
# documentation (Xerox and Ricoh billing counters)
PRINTERS = ["jetdirect_m130nw", "konica_c250i", "kyocera_cs-4053ci", "sharp", "brother_hl5370dw",
            "epson", "xerox_altalink_synthetic", "ricoh_mpc_synthetic"]
FIRST = {"impressions.total": 0, "marker.life": 1, "impressions.black": 2, "impressions.color": 3}


def say(text: str) -> None:
    print(f"demo   | {text}", flush=True)


class Stack:
    """The processes of the demo, stopped in reverse order whatever happens."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str | Path], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.work / "logs" / f"{name}.log"
        proc = spawn(argv, log, env=env)
        self.procs.append((name, proc, log))
        return proc

    def check(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise SystemExit(f"demo: {name} stopped (exit {proc.returncode}); its log:\n{log_tail(log, 20)}")

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            terminate(proc, signal.SIGTERM, timeout=5)


def cloud(db: str, *args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([PYTHON, "-m", "meterbox_cloud", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "METERBOX_CLOUD_DB": db, **(env or {})}, timeout=120)
    if done.returncode:
        raise SystemExit(f"demo: meterbox_cloud {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait(what: str, check: Any, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        stack.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not come up within {timeout:g} s; logs in {stack.work / 'logs'}")
        time.sleep(0.2)


def web_up(url: str, ca: Path) -> bool:
    try:
        return requests.get(url + "/claim", verify=str(ca), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def vendor(stack: Stack, work: Path, db: str) -> tuple[str, Path, int]:
    """CA, database, broker, web service and two ingest workers; returns (url, ca file, broker port)."""
    from meterbox_factory import ca

    ca_dir = work / "ca"
    authority = ca.init(ca_dir)
    ca.issue_server(authority, ["localhost", "127.0.0.1"], "server")
    ca.issue_client(authority, "ingest")
    cloud(db, "migrate")
    password = secrets.token_urlsafe(9)
    cloud(db, "manage", "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@vendor.example",
          env={"DJANGO_SUPERUSER_PASSWORD": password})
    (work / "staff-password").write_text(password + "\n")
    broker_port, web_port = free_tcp_port(), free_tcp_port()
    broker_dir = work / "broker"
    cloud(db, "broker-config", "--out", broker_dir, "--ca-dir", ca_dir, "--server-cert", ca_dir / "server.crt",
          "--port", broker_port, "--bind", "127.0.0.1", "--run-as", "root" if os.getuid() == 0 else "",
          "--log-file", broker_dir / "mosquitto.log", env={"METERBOX_CLOUD_CA_DIR": str(ca_dir)})
    stack.start("mosquitto", ["mosquitto", "-c", broker_dir / "mosquitto.conf"])
    url = f"https://127.0.0.1:{web_port}"
    stack.start("vendor-web", [PYTHON, "-m", "meterbox_cloud", "serve", "--ca-dir", ca_dir, "--tls-cert",
                               ca_dir / "server.crt", "--tls-key", ca_dir / "server.key", "--bind", "127.0.0.1",
                               "--port", str(web_port), "--workers", "1", "--threads", "4", "--secret-file",
                               work / "secret", "--broker-host", "localhost", "--broker-port", str(broker_port),
                               "--retry-after", "2", "--poll-interval", "5s", "--no-migrate"],
                env={"METERBOX_CLOUD_DB": db})
    wait("the vendor's web service", lambda: web_up(url, ca_dir / "ca.crt"), 60, stack)
    for n in (1, 2):
        stack.start(f"ingest-{n}", [PYTHON, "-m", "meterbox_cloud", "ingest", "--broker",
                                    f"127.0.0.1:{broker_port}", "--ca-file", ca_dir / "ca.crt",
                                    "--cert", ca_dir / "ingest.crt", "--key", ca_dir / "ingest.key",
                                    "--client-id", f"demo-ingest-{n}"], env={"METERBOX_CLOUD_DB": db})
    say(f"vendor service {url}/ (staff page {url}/staff/, user staff, password {password}); "
        f"broker localhost:{broker_port} (mutual TLS); 2 ingest workers on a shared subscription")
    return url, ca_dir / "ca.crt", broker_port


def claim(url: str, ca_file: Path, box: str, code: str) -> None:
    """What a key user does on the phone: the claim form, submitted."""
    session = requests.Session()
    page = session.get(f"{url}/claim", params={"box": box, "code": code}, verify=str(ca_file), timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if not token:
        raise SystemExit("demo: the claim page has no form; see logs/vendor-web.log")
    answer = session.post(f"{url}/claim", data={"csrfmiddlewaretoken": token.group(1), "box": box, "code": code,
                                                "email": "key.user@office.example", "site": "Demo office",
                                                "enroll": "auto"},
                          headers={"Referer": f"{url}/claim"}, verify=str(ca_file), timeout=30)
    if answer.status_code != 200:
        raise SystemExit(f"demo: the claim was refused ({answer.status_code})")
    say(f"--auto-claim: box {box} claimed for 'Demo office' as key.user@office.example")


def box_config(work: Path, identity: Path, ca_file: Path, sim: Simulator, interval: str) -> Path:
    """What the image ships: the factory identity and the office's printers; no broker, no box id."""
    lines = ["[box]", f'identity = "{identity}"', f'state_dir = "{work / "box-state"}"',
             f'runtime_dir = "{work / "box-run"}"', f'vendor_ca_file = "{ca_file}"', "",
             "[poll]", f'interval = "{interval}"', 'timeout = "2s"', "",
             "[discovery]", "enabled = false   # the demo's printers are listed; never sweep this machine's LAN", ""]
    for address, name in zip(sim.addresses, PRINTERS):
        lines += ["[[printers]]", f'host = "{address}"', f'community = "{name}"', ""]
    path = work / "meterbox.toml"
    path.write_text("\n".join(lines))
    return path


def clock_env(work: Path) -> dict[str, str]:
    """A box waits for NTP before it dates readings; on a machine without NTP the demo vouches for its clock."""
    from meterbox.outbox.clock import Clock

    if Clock().synced():
        return {}
    clock = work / "clock.json"
    clock.write_text(json.dumps({"synced": True}))
    say("this machine's clock is not NTP-synchronised: the demo's box is told to trust it (a real box holds "
        "readings until NTP syncs, at most an hour; see README)")
    return {"METERBOX_CLOCK_FILE": str(clock)}


def echo(path: Path, prefix: str, stop: threading.Event, keep: Any = lambda line: True) -> None:
    """Print a log file's new lines as they are written."""
    seen = 0
    while not stop.wait(0.3):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines[seen:]:
            if keep(line):
                print(f"{prefix} | {line}", flush=True)
        seen = len(lines)


def show_books(db_file: Path, stop: threading.Event) -> None:
    """The vendor's database, as the readings land in it."""
    seen = 0
    while not stop.wait(1.0):
        try:
            with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute("SELECT r.rowid, r.read_at, p.serial, p.manufacturer, p.model, r.meters, r.supplies"
                                  " FROM meterbox_cloud_reading r JOIN meterbox_cloud_printer p ON p.id=r.printer_id"
                                  " WHERE r.rowid > ? ORDER BY r.rowid", (seen,)).fetchall()
        except sqlite3.Error:
            continue
        for rowid, read_at, serial, make, model, meters, supplies in rows:
            seen = max(seen, rowid)
            shown = sorted(json.loads(meters), key=lambda m: (m["name"] not in FIRST, FIRST.get(m["name"], 0)))[:3]
            text = ", ".join(f"{m['name']} {m['value']:,}" for m in shown) or "no meters"
            levels = ", ".join(f"{s['name']} {s['level'] if s['level'] is not None else '-'}%"
                               for s in json.loads(supplies)[:3])
            print(f"vendor | {str(read_at)[:19]} {serial:<15} {f'{make} {model}'.strip()[:26]:<26} {text}; {levels}",
                  flush=True)


# What a page printed adds to, by meter name: every printer's billing meters grow together, as a
# real one's do (a mono page: total, black, marker life, sheets; a colour page: total, colour, ...).
MONO = ("impressions.total", "impressions.black", "marker.life", "sheets.total", "sheets.black")
COLOUR = ("impressions.total", "impressions.color", "marker.life", "sheets.total", "sheets.color")


def meter_counters(sim: Simulator, name: str, address: str) -> dict[str, tuple[str, int]]:
    """Meter name -> (OID, value) of the recording's plain counters, found as the box finds them."""
    import asyncio

    from meterbox.config import Credential, Secret
    from meterbox.printers.poll import read_printer
    from meterbox.printers.snmp import SnmpClient, Target

    async def poll() -> Any:
        client = SnmpClient()
        try:
            host, port = address.rsplit(":", 1)
            return await read_printer(client, Target(host, int(port), Credential(community=Secret(name))),
                                      strict=False)
        finally:
            client.close()

    recorded = {}
    for line in sim.recording(name).read_text(encoding="latin-1").splitlines():
        oid, _, rest = line.partition("|")
        tag, _, value = rest.partition("|")
        if tag in ("2", "65", "66", "70") and value.isdigit():   # Integer, Counter32, Gauge32, Counter64
            recorded[oid] = int(value)
    try:
        result = asyncio.run(poll())
    except Exception as err:  # the demo goes on; this printer just does not print
        print(f"demo   | printer {name}: its meters cannot be found ({err}); its counters stay still", flush=True)
        return {}
    counters = {}
    for source in result.explain:
        oid = source.oid.split(" + ")[0]     # a meter the profile sums (prints + copies): its first part grows
        if source.name in MONO + COLOUR and oid in recorded:
            counters[source.name] = (oid, recorded[oid])
    return counters


def printer_activity(sim: Simulator, stop: threading.Event, every: float) -> None:
    """The simulated offices print: each printer's billing meters grow between polls, together."""
    counters = {name: meter_counters(sim, name, address) for name, address in zip(PRINTERS, sim.addresses)}
    while not stop.wait(every):
        for name, meters in counters.items():
            pages = 7 + secrets.randbelow(40)
            colour = secrets.randbelow(pages // 3 + 1) if "impressions.color" in meters else 0
            grown: dict[str, int] = {}
            for meter, (oid, value) in list(meters.items()):
                add = (pages - colour if meter in MONO else 0) + (colour if meter in COLOUR else 0)
                meters[meter] = (oid, value + add)
                grown[oid] = max(grown.get(oid, 0), value + add)
            if grown:
                sim.set_values(name, grown)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    p = argparse.ArgumentParser(prog="meterbox-demo", description=__doc__.splitlines()[0])
    p.add_argument("--auto-claim", action="store_true", help="claim the box a few seconds after it starts")
    p.add_argument("--seconds", type=float, default=0, help="stop after N seconds (default: until Ctrl-C)")
    p.add_argument("--interval", default="5s", help="the box's poll interval (default 5s)")
    p.add_argument("--work", type=Path, help="keep everything in DIR (default: a temporary folder, removed)")
    args = p.parse_args()
    # `kill` or a service manager stops the demo as Ctrl-C does: every part stopped, the books counted.
    signal.signal(signal.SIGTERM, _interrupted)
    if shutil.which("mosquitto") is None:
        raise SystemExit("demo: mosquitto is not installed: apt-get install mosquitto")
    from meterbox_factory import label
    from meterbox_factory.mint import mint

    work = args.work or Path(tempfile.mkdtemp(prefix="meterbox-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    db_file = work / "vendor.sqlite3"
    db = f"sqlite:///{db_file}"
    stack, stop = Stack(work), threading.Event()
    threads: list[threading.Thread] = []
    try:
        url, ca_file, _ = vendor(stack, work, db)
        (identity,) = mint(work / "factory", 1, url)
        cloud(db, "import-boxes", work / "factory" / "vendor-import.json")
        label_png = work / f"label-{identity.box}.png"
        label_png.write_bytes(label.png(identity))
        claim_url = label.claim_url(identity)
        say(f"factory: box {identity.box} minted; its label (QR code) is {label_png}")
        port = free_udp_port()
        endpoints = [(f"127.0.0.{i + 1}", port) for i in range(len(PRINTERS))]
        with Simulator.with_recordings(PRINTERS, work / "printers", endpoints=endpoints) as sim:
            config = box_config(work, identity.folder, ca_file, sim, args.interval)
            meterbox = Path(sys.executable).parent / "meterbox"
            say(f"{len(PRINTERS)} simulated printers on {sim.addresses[0]} .. {sim.addresses[-1]}; the box starts "
                f"unclaimed; while the demo runs, try  {meterbox} status --config {config}"
                + ("" if args.work else "  (add --work DIR to keep it all after the demo)"))
            stack.start("box", [PYTHON, "-m", "meterbox", "run", "--config", config], env=clock_env(work))
            threads = [threading.Thread(target=echo, args=(work / "logs" / "box.log", "box   ", stop), daemon=True),
                       threading.Thread(target=show_books, args=(db_file, stop), daemon=True),
                       threading.Thread(target=printer_activity, args=(sim, stop, 4.0), daemon=True)]
            for t in threads:
                t.start()
            say(f"claim the box: open {claim_url} (the demo's own CA: accept the browser's warning), "
                "give an e-mail and a site name, and confirm" if not args.auto_claim else
                "the box will be claimed in 3 s (--auto-claim)")
            deadline = time.monotonic() + args.seconds if args.seconds else None
            claim_at = time.monotonic() + 3 if args.auto_claim else None
            while deadline is None or time.monotonic() < deadline:
                stack.check()
                if claim_at and time.monotonic() >= claim_at:
                    claim(url, ca_file, identity.box, identity.claim_code)
                    claim_at = None
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        stack.stop()
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as books:
        readings = books.execute("SELECT count(*) FROM meterbox_cloud_reading").fetchone()[0]
        rejected = books.execute("SELECT count(*) FROM meterbox_cloud_rejection").fetchone()[0]
    say(f"the vendor stored {readings} readings ({rejected} rejected)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if readings and not rejected else 1


if __name__ == "__main__":
    raise SystemExit(main())
