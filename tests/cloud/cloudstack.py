"""The vendor side, real and local, for tests and benches: a PostgreSQL cluster or SQLite, the vendor
CA, Mosquitto with the configuration ``broker-config`` writes, the web service (gunicorn, HTTPS) and
ingest workers, each a process of its own started through the project's own commands.
"""

from __future__ import annotations

import contextlib

import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from meterbox_factory import ca
from meterbox_factory.mint import Identity, mint
from support.process import free_tcp_port, log_tail, spawn, terminate

PYTHON = sys.executable
PG_BIN = Path("/usr/lib/postgresql/15/bin")
STAFF_PASSWORD = "correct horse battery staple"


#: The address the tests' "load balancer" connects from (forwarded.py): its X-Forwarded-* are believed.
LOAD_BALANCER = "127.0.0.2"

def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def cloud(*args: str | Path, db: str, check: bool = True, env: dict[str, str] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m meterbox_cloud ARGS`` against ``db``."""
    result = subprocess.run([PYTHON, "-m", "meterbox_cloud", *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "METERBOX_CLOUD_DB": db, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"meterbox_cloud {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Postgres:
    """A throw-away PostgreSQL 15 cluster run as the ``postgres`` user in a directory it owns."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="meterbox-pg-"))
        self.port = free_tcp_port()
        self.started = False

    def _as_postgres(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], capture_output=True,
                              text=True, timeout=120, check=True)

    def start(self) -> "Postgres":
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(PG_BIN / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "meterbox",
                          "--no-sync")
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-l", self.dir / "server.log", "-w", "-o",
                          f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on", "start")
        self.started = True
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self._as_postgres(PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "meterbox", name)
        return f"postgresql://meterbox@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"),
                            "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class Db:
    """Plain SQL on the vendor's database, to check what was stored without the service's own code."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.url.startswith("sqlite"):
            sql = sql.replace("%s", "?")
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url) as conn:
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]


class Proc:
    """A service process with its log; stopped (or killed) on exit."""

    def __init__(self, name: str, argv: list[str | Path], log: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log_path, self.env = name, argv, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Proc":
        self.proc = spawn(self.argv, self.log_path, env=self.env)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            terminate(self.proc, sig)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a power cut or the OOM killer."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self) -> str:
        return log_tail(self.log_path)


class Vendor:
    """One vendor deployment: database, CA, broker, web service, ingest workers."""

    def __init__(self, work: Path, db_url: str, *, workers: int = 2) -> None:
        self.work = work
        self.db_url = db_url
        self.db = Db(db_url)
        self.ca_dir = work / "ca"
        self.broker_dir = work / "broker"
        self.web_port = free_tcp_port()
        self.broker_port = free_tcp_port()
        self.worker_count = workers
        self.web: Proc | None = None
        self.broker: Proc | None = None
        self.workers: list[Proc] = []
        self.boxes_dir = work / "boxes"

    # -- set-up ------------------------------------------------------------------

    def prepare(self) -> None:
        """CA, certificates, tables, broker configuration: what an operator does once."""
        authority = ca.init(self.ca_dir)
        ca.issue_server(authority, ["localhost", "127.0.0.1"], "server")
        ca.issue_client(authority, "ingest")
        self.run("migrate")
        cloud("manage", "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@vendor.example",
              db=self.db_url, env={"DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD})
        self.run("broker-config", "--out", self.broker_dir, "--ca-dir", self.ca_dir,
                 "--server-cert", self.ca_dir / "server.crt", "--port", self.broker_port, "--bind", "127.0.0.1",
                 "--run-as", "root", "--log-file", self.broker_dir / "mosquitto.log")

    def run(self, *args: str | Path | int, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cloud(*map(str, args), db=self.db_url, check=check, env={"METERBOX_CLOUD_CA_DIR": str(self.ca_dir)})

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.web_port}"

    def start_web(self) -> None:
        self.web = Proc("web", [PYTHON, "-m", "meterbox_cloud", "serve", "--ca-dir", self.ca_dir,
                                "--tls-cert", self.ca_dir / "server.crt", "--tls-key", self.ca_dir / "server.key",
                                "--bind", "127.0.0.1", "--port", str(self.web_port), "--workers", "2",
                                "--threads", "4", "--secret-file", self.work / "secret", "--broker-host",
                                "localhost", "--broker-port", str(self.broker_port), "--retry-after", "1",
                                "--no-migrate", "--trusted-proxy", LOAD_BALANCER],
                        self.work / "web.log", {"METERBOX_CLOUD_DB": self.db_url,
                                                "METERBOX_CLOUD_INSECURE_COOKIES": "0"}).start()
        wait_for(self._web_up, 30, f"the web service on {self.url}; log:\n{self.web.tail()}")

    def _web_up(self) -> bool:
        assert self.web is not None
        if not self.web.running:
            raise AssertionError(f"the web service exited; log:\n{self.web.tail()}")
        try:
            return requests.get(self.url + "/claim", verify=str(self.ca_file), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_broker(self) -> None:
        self.broker = Proc("broker", ["mosquitto", "-c", self.broker_dir / "mosquitto.conf"],
                           self.work / "broker-stdout.log", {}).start()
        wait_for(self._broker_up, 20, f"mosquitto on 127.0.0.1:{self.broker_port}")

    def _broker_up(self) -> bool:
        assert self.broker is not None
        if not self.broker.running:
            raise AssertionError(f"mosquitto exited; log:\n{log_tail(self.broker_dir / 'mosquitto.log')}")
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(self.ca_dir / "ingest.crt", self.ca_dir / "ingest.key")
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.broker_port), timeout=1) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                    return True
        except (OSError, ssl.SSLError):
            return False

    def restart_broker(self) -> None:
        """Stop (saving sessions and queues) and start again on the same port: how a new CRL is read."""
        assert self.broker is not None
        self.broker.stop()
        self.start_broker()

    def start_worker(self, n: int) -> Proc:
        worker = Proc(f"ingest-{n}", [PYTHON, "-m", "meterbox_cloud", "ingest", "--broker",
                                      f"127.0.0.1:{self.broker_port}", "--ca-file", self.ca_file,
                                      "--cert", self.ca_dir / "ingest.crt", "--key", self.ca_dir / "ingest.key",
                                      "--client-id", f"ingest-test-{n}", "--stats-every", "1"],
                      self.work / f"ingest-{n}.log", {"METERBOX_CLOUD_DB": self.db_url}).start()
        seen = worker.log().count("subscribed to")
        try:
            wait_for(lambda: worker.log().count("subscribed to") > seen or not worker.running, 30,
                     f"ingest worker {n} to subscribe")
            assert worker.running, worker.tail()
        except BaseException:
            worker.stop()
            raise
        return worker

    def start(self) -> "Vendor":
        self.prepare()
        self.start_broker()
        self.start_web()
        for n in range(1, self.worker_count + 1):
            self.workers.append(self.start_worker(n))
        return self

    def restart_worker(self, n: int) -> Proc:
        """Start worker ``n`` again under its client id: it resumes its persistent session."""
        self.workers[n - 1] = self.start_worker(n)
        return self.workers[n - 1]

    def stop(self) -> None:
        for proc in [*self.workers, self.web, self.broker]:
            if proc is not None:
                proc.stop()

    # -- boxes -------------------------------------------------------------------

    def mint(self, count: int = 1) -> list[Identity]:
        """Mint boxes at the 'factory' and import them at the vendor, as the factory's file."""
        out = Path(tempfile.mkdtemp(prefix="batch-", dir=self.work))
        identities = mint(out, count, self.url)
        self.run("import-boxes", out / "vendor-import.json")
        return identities

    def box_cert(self, box: str) -> tuple[Path, Path]:
        """A client certificate for ``box`` straight from the CA (the load tests skip enrollment)."""
        return ca.issue_client(ca.load(self.ca_dir), box, f"client-{box}")

    def mqtt_client(self, cert: Path, key: Path, client_id: str) -> "Publisher":
        return Publisher("127.0.0.1", self.broker_port, self.ca_file, cert, key, client_id)


class Publisher:
    """A box's MQTT v5 connection, publishing at QoS 1 and recording each PUBACK's reason code."""

    def __init__(self, host: str, port: int, ca_file: Path, cert: Path, key: Path, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ca_file), certfile=str(cert), keyfile=str(key))
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.acks: dict[int, int] = {}
        self.connect_result: Any = None
        self._connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        self.client.on_connect_fail = lambda c, u: self._connected.set()
        self.client.on_disconnect = lambda c, u, f, rc, p: self._connected.set()
        self.host, self.port = host, port

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connect_result = reason
        self._connected.set()

    def connect(self, timeout: float = 10) -> bool:
        """True when the broker accepted the connection (TLS and CONNACK)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        try:
            self.client.connect(self.host, self.port, clean_start=True, properties=props)
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        self._connected.wait(timeout)
        return bool(self.connect_result is not None and not self.connect_result.is_failure
                    and self.client.is_connected())

    def publish(self, topic: str, body: dict[str, Any] | bytes) -> mqtt.MQTTMessageInfo:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def vendor_stack(work: Path, db_url: str, workers: int = 2) -> Iterator[Vendor]:
    vendor = Vendor(work, db_url, workers=workers)
    try:
        yield vendor.start()
    except BaseException:
        for proc in [vendor.web, vendor.broker, *vendor.workers]:
            if proc is not None:
                print(f"---- {proc.name} log ----\n{proc.tail()}")
        raise
    finally:
        vendor.stop()


_ULID = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """A message id as a box makes it (26 Crockford base32 symbols, time first)."""
    import secrets
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_ULID[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def reading(box: str, serial: str, n: int = 0) -> dict[str, Any]:
    """A reading that satisfies the wire contract."""
    return {"v": 1, "id": ulid(), "box": box, "serial": serial, "read_at": "2026-11-24T10:00:00Z", "clock": "ntp",
            "meters": [{"name": "impressions.total", "value": 100_000 + n, "unit": "impressions"},
                       {"name": "impressions.black", "value": 80_000 + n, "unit": "impressions"},
                       {"name": "impressions.color", "value": 20_000, "unit": "impressions"},
                       {"name": "sheets.duplex", "value": 9_000, "unit": "sheets"}],
            "supplies": [{"name": f"toner.{c}", "level": 40, "unit": "percent", "state": "ok"}
                         for c in ("black", "cyan", "magenta", "yellow")]}


def connections(worker: Proc) -> int:
    """How many times a worker has connected (its log says so each time)."""
    return worker.log().count(" connected to ")


@contextlib.contextmanager
def phone_browser() -> Iterator[Any]:
    """Debian's headless Chromium through Selenium, in a 360 x 800 window: a phone."""
    from support import require

    require("/usr/bin/chromedriver", "apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.set_window_size(360, 800)
        yield driver
    finally:
        driver.quit()


def scan_label(identity: Identity, work: Path) -> str:
    """What a phone reads from the box's label: its QR code rendered to PNG and decoded by zbarimg."""
    from meterbox_factory import label
    from support import require

    require("zbarimg", "apt-get install zbar-tools")
    png = work / f"label-{identity.box}.png"
    png.write_bytes(label.png(identity))
    return subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True,
                          timeout=30).stdout.strip()
