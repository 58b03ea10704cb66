"""The vendor's side of the wire in tests: a real MQTT v5 client that records what arrives.

It connects with the test-only ``ingest`` identity, which the broker ACL lets read
every box's topics, subscribes to ``meterbox/v1/+/+`` at QoS 1 and keeps every
message, in order, duplicates included (QoS 1 is at-least-once: a test of
idempotent delivery needs to see the duplicates). Its session outlives a broker
restart, so ``Broker.stop()``/``start()`` loses nothing: that takes a session
expiry interval AND clean_start=False on the very first CONNECT, because
Mosquitto 2.0.11 does not save a session that began with clean_start=1 (checked:
session_present is 1 after a reconnect, 0 after a broker restart).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .broker import TOPIC_ROOT, Broker
from .process import Service

__all__ = ["Message", "Subscriber", "SUBSCRIPTION"]

SUBSCRIPTION = f"{TOPIC_ROOT}/+/+"


@dataclass(frozen=True)
class Message:
    """One message as received: ``json`` is None when the payload is not JSON."""

    topic: str
    payload: bytes
    json: Any
    retain: bool = False

    @property
    def box(self) -> str:
        """The box id from the topic (``meterbox/v1/<box>/<kind>``)."""
        return self.topic.split("/")[2]

    @property
    def kind(self) -> str:
        """``readings``, ``devices`` or ``status``."""
        return self.topic.split("/")[3]


class Subscriber(Service):
    """Records everything published under ``meterbox/v1/+/+``; use as a context manager."""

    def __init__(self, broker: Broker, *, topic: str = SUBSCRIPTION, session_expiry: int = 3600,
                 connect_timeout: float = 10.0) -> None:
        self.broker = broker
        self.topic = topic
        self.connect_timeout = connect_timeout
        self._messages: list[Message] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._error: str | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ingest-{uuid.uuid4().hex[:12]}",
                                   protocol=mqtt.MQTTv5)
        cert, key = broker.ingest_cert
        self._client.tls_set(ca_certs=str(broker.ca_file), certfile=str(cert), keyfile=str(key))
        # Reconnect quickly after a broker restart; the session keeps the subscription.
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.SessionExpiryInterval = session_expiry
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Connect and return once the broker has acknowledged the subscription."""
        # The client id is new, so clean_start=False cannot pick up a stale session.
        self._client.connect(self.broker.host, self.broker.port, keepalive=30,
                             clean_start=False, properties=self._connect_properties)
        self._client.loop_start()
        if not self._subscribed.wait(self.connect_timeout):
            self.stop()
            raise RuntimeError(f"subscriber not subscribed within {self.connect_timeout} s: {self._error or 'no answer'}; "
                               f"broker log:\n{self.broker.log()[-2000:]}")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # -- what arrived ---------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """A snapshot of everything received so far, in arrival order."""
        with self._changed:
            return list(self._messages)

    def on(self, kind: str) -> list[Message]:
        """Messages of one kind (``readings``, ``devices``, ``status``)."""
        return [m for m in self.messages if m.kind == kind]

    def ids(self, kind: str | None = None) -> list[str]:
        """The ``id`` of every JSON message (of ``kind``), duplicates included."""
        return [m.json["id"] for m in self.messages
                if isinstance(m.json, dict) and "id" in m.json and (kind is None or m.kind == kind)]

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float = 10.0) -> list[Message]:
        """Block until ``predicate(messages)`` holds; return the messages, or fail saying what came.

        Example: ``sub.wait_for(lambda ms: len(ms) >= 3)``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._messages)):
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n".join(f"  {m.topic} {m.payload[:200]!r}" for m in self._messages) or "  (nothing)"
                    raise AssertionError(f"condition not met within {timeout} s; received:\n{got}")
                self._changed.wait(left)
            return list(self._messages)

    def wait_for_count(self, count: int, kind: str | None = None, timeout: float = 10.0) -> list[Message]:
        """Wait until at least ``count`` messages (of ``kind``) have arrived; return those."""
        self.wait_for(lambda ms: sum(kind is None or m.kind == kind for m in ms) >= count, timeout)
        return self.on(kind) if kind else self.messages

    # -- paho callbacks (network thread) ------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            self._error = f"CONNACK {reason}"
            return
        if not flags.session_present or not self._subscribed.is_set():
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reasons: list[ReasonCode], properties: Properties | None) -> None:
        if any(r.is_failure for r in reasons):
            self._error = f"SUBACK {[str(r) for r in reasons]}"
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed: Any = json.loads(msg.payload)
        except ValueError:
            parsed = None
        with self._changed:
            self._messages.append(Message(msg.topic, bytes(msg.payload), parsed, bool(msg.retain)))
            self._changed.notify_all()
