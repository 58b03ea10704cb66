"""In-memory MQTT ingest for the box-side demo and tests: the wire contract's receiver without a database.

The vendor service's own ingest is worker.py (shared subscription, database, ack after commit).

The vendor bills from what this accepts, so it is strict: a payload with a field the
contract does not name is rejected (and counted), and a message id seen before is a
redelivery, not a second reading.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .contract import SCHEMAS, VALIDATORS, ContractError, check  # noqa: F401 (SCHEMAS, VALIDATORS: for tests)

log = logging.getLogger(__name__)


@dataclass
class Books:
    """What the vendor has accepted: one entry per message id."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    rejected: int = 0


class Ingest:
    """Subscribes to every box's topics over mutual TLS and keeps the books."""

    def __init__(self, host: str, port: int, ca_file: Path, cert_file: Path, key_file: Path,
                 on_message: Callable[[str, str, dict[str, Any]], None] = lambda box, kind, body: None) -> None:
        self.books = Books()
        self.on_message = on_message
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vendor-ingest", protocol=mqtt.MQTTv5)
        self._client.tls_set(ca_certs=str(ca_file), certfile=str(cert_file), keyfile=str(key_file))
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe("meterbox/v1/+/+", qos=1)
        self._client.on_message = self._on_message
        self._address = (host, port)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # a restart of the ingest does not lose queued readings
        self._client.connect(*self._address, clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            box, kind, body = check(msg.topic, msg.payload)
        except ContractError as err:
            with self._lock:
                self.books.rejected += 1
            log.warning("rejected a message on %s: %s", msg.topic, str(err).splitlines()[0])
            return
        with self._lock:
            if body["id"] in self.books.accepted:
                self.books.duplicates += 1
                return
            self.books.accepted[body["id"]] = body
        self.on_message(box, kind, body)
