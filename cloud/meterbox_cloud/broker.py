"""The Mosquitto configuration the vendor runs: mutual TLS, the box's certificate CN as its user name,
a per-box ACL, the CRL, and persistent sessions for the ingest workers.

After a revocation the broker must re-read ``crlfile``. Checked on Mosquitto 2.0.11 (Debian 12):
a SIGHUP does it (``revoke --broker-pid-file`` sends one; ``systemctl reload mosquitto`` is the
same) for new connections, but a revoked box that is connected stays connected until it
reconnects; the ingest rejects what it sends meanwhile, and a broker restart cuts it off at once
(persistent sessions and queued messages survive the restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOPIC_ROOT = "meterbox/v1"
SHARE_GROUP = "ingest"


@dataclass(frozen=True)
class BrokerSettings:
    """Everything the configuration names; paths are written as given (make them absolute)."""

    out: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    crl: Path
    port: int = 8883
    bind: str = "0.0.0.0"
    websockets_port: int | None = None
    ingest_identity: str = "ingest"
    run_as: str = "mosquitto"
    log_file: Path | None = None


def acl(ingest_identity: str) -> str:
    """Boxes write under their own id and read nothing; the ingest identity reads every box's topics.

    Checked on Mosquitto 2.0.11: with an ``acl_file`` it grants every SUBSCRIBE, shared or not,
    and applies the ``read`` rules to each message as it delivers it, against the message's real
    topic. So ``topic read meterbox/#`` is what lets the workers of ``$share/ingest/meterbox/v1/+/+``
    receive; a ``$share/...`` pattern is neither needed nor consulted, and a box that subscribes
    gets a SUBACK but never a message.
    """
    return (
        "# Written by python -m meterbox_cloud broker-config.\n"
        "# A box (user = its certificate's CN = its box id) may publish only under its own id and read nothing.\n"
        f"pattern write {TOPIC_ROOT}/%u/#\n"
        "\n# The vendor's ingest workers: read every box's messages, through the shared subscription.\n"
        f"user {ingest_identity}\n"
        "topic read meterbox/#\n"
    )


def _tls(s: BrokerSettings) -> list[str]:
    return [f"cafile {s.ca_cert}", f"certfile {s.server_cert}", f"keyfile {s.server_key}", f"crlfile {s.crl}",
            "require_certificate true", "use_identity_as_username true", "tls_version tlsv1.2"]


def config(s: BrokerSettings) -> str:
    """mosquitto.conf for these settings."""
    persistence = s.out / "persistence"
    lines = [
        "# Written by python -m meterbox_cloud broker-config; regenerate rather than edit.",
        f"user {s.run_as}",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {s.out / 'acl'}",
        f"pid_file {s.out / 'mosquitto.pid'}",
        "persistence true",
        f"persistence_location {persistence}/",
        "autosave_interval 30",
        # A worker may be down while boxes keep sending; keep its share of the queue (default 1000 drops).
        "max_queued_messages 1000000",
        # Outgoing QoS 1 messages awaiting PUBACK per client: the ingest acknowledges a whole batch
        # after its commit, so it needs a window larger than a batch (MQTT v5 clients may ask for less).
        "max_inflight_messages 2000",
        f"log_dest {'file ' + str(s.log_file) if s.log_file else 'stderr'}",
        "log_type error", "log_type warning", "log_type notice", "log_type information",
        "connection_messages true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "",
        f"listener {s.port} {s.bind}",
        "protocol mqtt",
        *_tls(s),
    ]
    if s.websockets_port:
        # Mosquitto 2.0 will not start with a websockets listener alone, and binds it on every address.
        lines += ["", f"listener {s.websockets_port}", "protocol websockets", *_tls(s)]
    return "\n".join(lines) + "\n"


def write(s: BrokerSettings) -> Path:
    """Write mosquitto.conf and acl into ``s.out``; returns the configuration's path."""
    s.out.mkdir(parents=True, exist_ok=True)
    (s.out / "persistence").mkdir(exist_ok=True)
    (s.out / "acl").write_text(acl(s.ingest_identity))
    path = s.out / "mosquitto.conf"
    path.write_text(config(s))
    return path
