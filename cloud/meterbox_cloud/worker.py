"""An ingest worker: one member of the MQTT v5 shared subscription ``$share/ingest/meterbox/v1/+/+``.

Several workers split the boxes' messages between them (the broker hands each message to one
member). Each message is acknowledged (PUBACK) only after the transaction that stored it has
committed, so a worker killed at any instant loses nothing: the broker redelivers what was not
acknowledged, and the database's unique message ids drop what was stored already.

Threading: paho runs in this one thread under ``loop_forever()``; the batch is committed from
``loop_misc()``, which ``loop_forever()`` calls after every read and at every select timeout, so
paho is never called from two threads.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from django.db import DatabaseError, connection
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from .books import Books, Counts
from .broker import SHARE_GROUP

log = logging.getLogger(__name__)
TOPIC = f"$share/{SHARE_GROUP}/meterbox/v1/+/+"
SESSION_EXPIRY = 7 * 24 * 3600  # a worker down for a week still finds its share of the messages queued


class _Leave(SystemExit):
    """Out of paho's loop at once: a stop with no connection to finish cleanly.

    Not an Exception, so paho's callback guard lets it through; a SystemExit, so one raised by a
    second signal after the loop still ends the process cleanly (status 0)."""


@dataclass(frozen=True)
class WorkerSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    batch_size: int = 500
    max_delay: float = 0.05  # seconds a message may wait for its batch when more keep coming
    stats_every: float = 10.0


class IngestWorker(mqtt.Client):
    """paho client that batches received messages and acknowledges them after their commit."""

    def __init__(self, settings: WorkerSettings, books: Books | None = None) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5,
                         manual_ack=True)
        self.settings = settings
        self.books = books or Books()
        self.pending: list[mqtt.MQTTMessage] = []
        self.first_pending_at = 0.0
        self.retry_at = 0.0
        self.db_failing = False
        self.stopping = False
        self.total = Counts()
        self._since_stats = Counts()
        self._stats_at = time.monotonic()
        self.tls_set(ca_certs=str(settings.ca_file), certfile=str(settings.cert_file),
                     keyfile=str(settings.key_file))
        self.reconnect_delay_set(1, 30)
        self.on_connect = self._handle_connect
        self.on_subscribe = self._handle_subscribe
        self.on_disconnect = self._handle_disconnect
        self.on_message = self._handle_message

    # -- paho callbacks (this thread) ----------------------------------------

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused ingest worker %s: %s; check its client certificate (CN must be "
                      "the ingest identity of the broker's ACL)", self.settings.host, self.settings.port,
                      self.settings.client_id, reason)
            return
        log.info("ingest worker %s connected to %s:%d (session %s)", self.settings.client_id, self.settings.host,
                 self.settings.port, "resumed" if flags.session_present else "new")
        self.subscribe(TOPIC, options=SubscribeOptions(qos=1))

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        for reason in reasons:
            if reason.is_failure:
                log.error("broker refused the subscription %s: %s; the ACL must let this identity read "
                          "meterbox/#", TOPIC, reason)
            else:
                log.info("subscribed to %s", TOPIC)

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Properties | None) -> None:
        # Unacknowledged messages come back on reconnect: the batch in hand is dropped, not stored.
        self.pending = []
        if self.stopping:
            # Asked to stop, and the broker went first (a whole host shutting down): leave now,
            # or loop_forever() would reconnect to it for ever.
            raise _Leave
        else:
            log.warning("ingest worker %s lost the broker (%s); reconnecting", self.settings.client_id, reason)

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self.pending:
            self.first_pending_at = time.monotonic()
        self.pending.append(message)
        if len(self.pending) >= self.settings.batch_size:
            self.flush()

    # -- batching --------------------------------------------------------------

    def loop_misc(self) -> mqtt.MQTTErrorCode:
        """Called by loop_forever() after each read and each idle timeout: commit a batch that is due."""
        now = time.monotonic()
        if self.pending and now >= self.retry_at and (
                self.stopping or self._input_drained() or now - self.first_pending_at >= self.settings.max_delay):
            self.flush()
        if now - self._stats_at >= self.settings.stats_every:
            self._log_stats(now)
        if self.stopping and not self.pending:
            self.disconnect()
        return super().loop_misc()

    def _input_drained(self) -> bool:
        """True when nothing more is waiting on the socket: commit now rather than wait for more."""
        sock = self.socket()
        if sock is None:
            return True
        if getattr(sock, "pending", lambda: 0)():
            return False
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable

    def flush(self) -> None:
        """Store the pending batch in one transaction, then acknowledge each message to the broker."""
        batch = self.pending
        try:
            counts = self.books.store((m.topic, m.payload) for m in batch)
        except DatabaseError as err:
            connection.close()  # a fresh connection on the next try
            self.retry_at = time.monotonic() + 2.0
            if not self.db_failing:
                log.error("ingest worker %s cannot write to the database (%s); %d messages held "
                          "unacknowledged, retrying every 2 s", self.settings.client_id,
                          str(err).strip().splitlines()[0], len(batch))
            self.db_failing = True
            return
        if self.db_failing:
            log.info("ingest worker %s writes to the database again", self.settings.client_id)
        self.db_failing = False
        self.pending = []
        for message in batch:
            self.ack(message.mid, message.qos)
        self.total.add(counts)
        self._since_stats.add(counts)

    def _log_stats(self, now: float) -> None:
        c, seconds = self._since_stats, now - self._stats_at
        if c.stored or c.duplicates or c.rejected:
            log.info("stored %d messages (%.0f/s), dropped %d duplicates, rejected %d", c.stored,
                     c.stored / seconds, c.duplicates, c.rejected)
        self._since_stats, self._stats_at = Counts(), now

    # -- running ---------------------------------------------------------------

    def run(self) -> None:
        """Connect (persistent session) and work until SIGTERM or SIGINT; then commit and leave."""
        def stop(signum: int, frame: Any) -> None:
            if not self.is_connected():
                raise _Leave  # nothing in hand: unacknowledged messages stay with the broker
            self.stopping = True  # acted on by loop_misc(), in paho's own thread, after a last commit

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        # The broker may have this many messages awaiting our PUBACK: room for two batches.
        props.ReceiveMaximum = min(65535, 2 * self.settings.batch_size)
        self.connect_async(self.settings.host, self.settings.port, keepalive=30, clean_start=False,
                           properties=props)
        with contextlib.suppress(_Leave):
            self.loop_forever(timeout=self.settings.max_delay, retry_first_connection=True)
        log.info("ingest worker %s stopped: %d stored, %d duplicates dropped, %d rejected in all",
                 self.settings.client_id, self.total.stored, self.total.duplicates, self.total.rejected)
