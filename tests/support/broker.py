"""A real Mosquitto broker configured like the vendor's: mutual TLS and a per-box ACL.

* MQTT over TLS on 127.0.0.1:<free port>; a client certificate from the test CA is
  required and its CN becomes the user name (``use_identity_as_username``).
* ACL: a box may publish only under ``meterbox/v1/<its CN>/#``; the test-only
  ``ingest`` identity (``Pki.ingest``) may read ``meterbox/#``.
* Optional MQTT over WebSockets with the same TLS settings, beside the ordinary
  listener (Mosquitto 2.0.11 will not start with a websockets listener alone, and
  that listener binds all interfaces whatever address it is given: PITFALLS.md).
* Persistence in the broker's own directory, so ``stop()`` + ``start()`` (same
  ports) keeps persistent sessions and queued QoS 1 messages, as a real restart.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from .pki import INGEST_ID, CertPair, Pki
from .process import Service, free_tcp_port, log_tail, spawn, terminate

__all__ = ["Broker", "BrokerError", "TOPIC_ROOT"]

TOPIC_ROOT = "meterbox/v1"


class BrokerError(RuntimeError):
    """Mosquitto did not start; the message carries its log."""


class Broker(Service):
    """A running ``mosquitto -c <conf>``; use it as a context manager.

    ``server`` picks the certificate the broker presents (default ``pki.server``;
    ``pki.server_wrong_name`` or ``pki.server_expired`` for the failure tests); ``crl`` a
    CRL file (``Pki.crl``) the broker checks client certificates against; ``log_types``
    Mosquitto's ``log_type`` lines (``all`` logs every packet: too much for a soak).
    """

    def __init__(
        self,
        pki: Pki,
        *,
        work_dir: Path | None = None,
        server: CertPair | None = None,
        websockets: bool = False,
        host: str = "127.0.0.1",
        start_timeout: float = 10.0,
        crl: Path | None = None,
        log_types: tuple[str, ...] = ("all",),
    ) -> None:
        self.pki = pki
        self.server = server or pki.server
        self.crl = crl
        self.log_types = log_types
        self.host = host
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work_dir / "mosquitto.log"
        self.conf_path = self.work_dir / "mosquitto.conf"
        self.acl_path = self.work_dir / "acl"
        self.port = free_tcp_port(host)
        # The websockets listener binds every interface: the port must be free on all.
        self.ws_port: int | None = free_tcp_port("0.0.0.0") if websockets else None
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- identities -----------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """The CA a client checks the broker against (and that signs box certificates)."""
        return self.pki.ca_cert

    def client_cert(self, box_id: str) -> CertPair:
        """``(cert, key)`` of a box whose CN is ``box_id``, accepted by this broker."""
        return self.pki.client(box_id)

    @property
    def ingest_cert(self) -> CertPair:
        """The test-only identity that may subscribe to every box's topics."""
        return self.pki.ingest

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart, on the same ports) and return once TLS handshakes succeed."""
        if self.running:
            return
        with open(self.log_path, "a") as log:
            log.write(f"---- start {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        self._proc = spawn(["mosquitto", "-c", self.conf_path], self.log_path, cwd=self.work_dir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, *, crash: bool = False) -> None:
        """Stop the broker; ``crash=True`` kills it (SIGKILL) without saving its state.

        A normal stop (SIGTERM) writes the persistence file, so sessions and queued
        messages are back after ``start()``.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, signal.SIGKILL if crash else signal.SIGTERM)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the broker logged so far (connections, refusals, ACL denials)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- internals ------------------------------------------------------------

    def _write_config(self) -> None:
        persistence = self.work_dir / "persistence"
        persistence.mkdir(exist_ok=True)
        self.acl_path.write_text(
            "# Each box publishes only under its own id (the CN of its certificate).\n"
            f"pattern write {TOPIC_ROOT}/%u/#\n"
            "\n# Test-only ingest identity: reads everything the boxes send.\n"
            f"user {INGEST_ID}\n"
            "topic read meterbox/#\n"
        )
        tls = (
            f"cafile {self.pki.ca_cert}\n"
            f"certfile {self.server.cert}\n"
            f"keyfile {self.server.key}\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            + (f"crlfile {self.crl}\n" if self.crl else "")
        )
        lines = [
            "# Written by tests/support/broker.py",
            "user root",  # keep running as the invoking user; 'mosquitto' may not exist
            "per_listener_settings false",
            "allow_anonymous false",
            f"acl_file {self.acl_path}",
            "persistence true",
            # A vendor's ingest may be offline while a box drains a week's backlog: keep it
            # queued (Mosquitto's default of 1000 would drop the rest).
            "max_queued_messages 1000000",
            f"persistence_location {persistence}/",
            "log_dest stderr",
            *(f"log_type {t}" for t in self.log_types),
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "",
            f"listener {self.port} {self.host}",
            "protocol mqtt",
            tls,
        ]
        if self.ws_port is not None:
            lines += [f"listener {self.ws_port} {self.host}", "protocol websockets", tls]
        self.conf_path.write_text("\n".join(lines))

    def _wait_ready(self) -> None:
        """Complete a TLS handshake, with the ingest certificate, on every listener."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        # Readiness only: the broker may deliberately present a bad certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(self.pki.ingest.cert, self.pki.ingest.key)
        deadline = time.monotonic() + self.start_timeout
        for port in [self.port, *([self.ws_port] if self.ws_port else [])]:
            while True:
                if not self.running:
                    raise BrokerError(f"mosquitto exited during start-up; log:\n{log_tail(self.log_path)}")
                try:
                    with socket.create_connection((self.host, port), timeout=1.0) as raw:
                        with context.wrap_socket(raw, server_hostname=self.host):
                            break
                except (OSError, ssl.SSLError):
                    if time.monotonic() > deadline:
                        raise BrokerError(
                            f"mosquitto did not accept TLS on {self.host}:{port} within {self.start_timeout} s; "
                            f"log:\n{log_tail(self.log_path)}"
                        ) from None
                    # Nothing to wait on but the listen socket: retry shortly.
                    time.sleep(0.05)
