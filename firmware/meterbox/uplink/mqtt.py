"""The uplink: MQTT v5 over mutual TLS to the vendor broker, QoS 1, persistent session.

One owner for the socket: paho runs on the daemon's event loop (connection.py), so the
daemon's publish() and paho's own reads, PUBACKs and PINGREQs all happen on one thread.

Ways to the broker, for offices that block port 8883: MQTT over TLS on uplink.port, or
MQTT over WebSockets over TLS on uplink.websockets_port (443), either one through an
office proxy (HTTP CONNECT with Basic authentication, via PySocks, which paho uses for
proxies). With transport "auto" the next way is tried when one cannot be reached, and a
way that worked is kept. A TLS failure is never a reason to try another way (it says
the broker, the CA or the certificates are wrong, not the path), and TLS is equally
strict on every way.

A row leaves the outbox only after its PUBACK: take_acked() hands the acknowledged ids to
the daemon, which marks them sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Callable

import socks  # PySocks: paho's proxy support

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from meterbox.config import UplinkConfig
from meterbox.errors import UplinkError
from meterbox.outbox.store import Message
from meterbox.uplink.connection import Client, Connection
from meterbox.uplink.tls import (Way, early_error, explain_connack, explain_drop, explain_tls, path_failure,
                                 tls_context, ways)

log = logging.getLogger(__name__)

REFUSED_RETRY = 60  # seconds before a message the broker refused is offered again
SESSION_EXPIRY = 7 * 24 * 3600  # the broker keeps our session (and in-flight QoS 1) for a week
PAUSE_GRACE = 0.5  # seconds pause() gives the DISCONNECT before the socket is closed anyway


class _Abandoned(Exception):
    """Paused or closed while a connection was being set up."""


class Uplink:
    """Sends outbox rows; reports PUBACKs back; reconnects with back-off and jitter.

    Every method runs on the event loop of run(), and so do ON_ACK (a PUBACK arrived: the
    window opened) and ON_STATE (the uplink's error, or None once connected).

        uplink = Uplink(cfg.uplink, box_id, on_ack=wake.set, on_state=show)
        task = asyncio.create_task(uplink.run())
        for message in store.pending(uplink.window(), exclude=uplink.flying()):
            uplink.publish(message)
        store.mark_sent(uplink.take_acked())
        await uplink.close()
    """

    def __init__(self, cfg: UplinkConfig, box_id: str, *, on_ack: Callable[[], None],
                 on_state: Callable[[UplinkError | None], None]) -> None:
        self.cfg = cfg
        self.box_id = box_id
        self._on_ack = on_ack
        self._on_state = on_state
        self.ways = ways(cfg)
        self.way = self.ways[0]
        self.connections = 0                           # successful CONNACKs so far
        self.last_error: UplinkError | None = None
        self._link: Connection | None = None           # the connection now, or being set up
        self._connected = False
        self._paused = False
        self._closing = False
        self._changed = asyncio.Event()                # pause, resume or close: run() looks again
        self._drained = asyncio.Event()                # nothing in flight
        self._in_flight: dict[int, str] = {}           # mid -> message id
        self._acked: list[str] = []                    # acknowledged, not yet taken
        self._refused: dict[str, float] = {}           # message id -> when the broker refused it
        self._refusals: set[str] = set()               # refusal reasons already logged
        self._said: dict[Way, str] = {}                # the last failure logged, per way

    # --- state ---------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def connected(self) -> bool:
        """The broker has accepted the box (CONNACK) and the connection is up."""
        return self._connected

    def pause(self) -> None:
        """No connection to the vendor at all (not even DNS) until resume(); closed within a second."""
        if self._paused:
            return
        self._paused = True
        self._changed.set()
        if self._link is not None:
            self._link.end(PAUSE_GRACE)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._changed.set()

    async def close(self, timeout: float = 1.0) -> None:
        """DISCONNECT cleanly and publish nothing more; returns within TIMEOUT, closed either way.

        Half the time at most goes to PUBACKs of what is in flight, so fewer are sent again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._closing = True
        self._changed.set()
        link = self._link
        if link is None or not link.attached:
            return
        if self._in_flight and self._connected:
            self._drained.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout / 2)
        link.end(None)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(link.ended), max(deadline - loop.time(), 0.0))
        link.abort()

    # --- the connection loop -------------------------------------------------------
    async def run(self) -> None:
        """Connect, stay connected, reconnect with back-off (1 s to 5 min, jittered); return after close()."""
        try:
            await self._connection_loop()
        finally:  # cancelled, or a bug: no socket stays on the loop
            if self._link is not None:
                self._link.abort()

    async def _connection_loop(self) -> None:
        delay = 1.0
        tried = 0  # ways that could not be reached since the last back-off
        while not self._closing:
            if self._paused:
                await self._until(lambda: not self._paused or self._closing)
                continue
            try:
                link = await self._open()
            except _Abandoned:
                continue
            except Exception as err:  # each failure becomes one clear error, then back-off
                self._fail(explain_tls(err, self.cfg, self.way))
                if path_failure(err) and len(self.ways) > 1:
                    self.way = self.ways[(self.ways.index(self.way) + 1) % len(self.ways)]
                    tried += 1
                    if tried < len(self.ways):
                        continue  # the next way at once; back off once all have failed
                tried = 0
                await self._backoff(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 300.0)
                continue
            tried = 0
            await link.ended
            if link.acked:
                delay = 1.0
            await self._backoff(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 300.0)

    async def _until(self, condition: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until CONDITION holds after a pause, resume or close, or TIMEOUT passes."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not condition():
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _backoff(self, seconds: float) -> None:
        await self._until(lambda: self._closing or self._paused, seconds)

    def _new_connection(self) -> Connection:
        # reconnect_on_failure=False: paho would reconnect with the same TLS context (the old
        # certificate) and the same way; run() reconnects with fresh ones instead.
        client = Client(CallbackAPIVersion.VERSION2, client_id=self.box_id, protocol=mqtt.MQTTv5,
                             transport="websockets" if self.way.transport == "websockets" else "tcp",
                             reconnect_on_failure=False)
        if self.way.transport == "websockets":
            client.ws_set_options(path=self.cfg.websockets_path)
        if proxy := self.way.proxy:
            client.proxy_set(proxy_type=socks.HTTP if proxy.scheme == "http" else socks.SOCKS5,
                             proxy_addr=proxy.host, proxy_port=proxy.port, proxy_rdns=True,
                             proxy_username=proxy.user or None,
                             proxy_password=proxy.password.reveal() if proxy.password else None)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(max(self.cfg.in_flight, 1))
        return Connection(client, self.way, self.cfg.keepalive, on_closed=self._closed)

    async def _open(self) -> Connection:
        """A fresh client per connection, connected in a thread, then handed to the loop.

        The outbox, not paho's memory, decides what is resent (same message ids), and a fresh
        TLS context picks up renewed certificate files.
        """
        link = self._new_connection()
        self._link = link
        way = self.way
        connecting = link.connect_in_thread(lambda client: self._connect(client, way))
        interrupted = asyncio.ensure_future(self._until(lambda: self._paused or self._closing))
        try:
            await asyncio.wait({connecting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            link.discard(connecting)
            raise
        finally:
            interrupted.cancel()
        if not connecting.done() or self._paused or self._closing:
            link.discard(connecting)  # its socket is closed unused
            raise _Abandoned
        connecting.result()  # raises what connecting raised
        link.attach()
        return link

    def _connect(self, client: mqtt.Client, way: Way) -> None:
        """Set-up thread: DNS, TCP, proxy, TLS and WebSockets handshakes; CONNECT is only queued."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY
        client.tls_set_context(tls_context(self.cfg))
        client.connect(self.cfg.host, way.port, keepalive=int(self.cfg.keepalive),
                       clean_start=False, properties=props)

    def _closed(self, link: Connection) -> None:
        """A connection has ended: nothing is in flight any more (the outbox resends, same ids)."""
        if link is self._link:
            self._connected = False
            self._in_flight.clear()
            self._drained.set()

    # --- paho's MQTT callbacks (on the loop) ------------------------------------------------
    def _on_connect(self, client: mqtt.Client, link: Connection, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if link is not self._link or link.closed:
            return
        if self._paused or self._closing:
            link.quiet = True
            client.disconnect()  # pause pressed while this connection was being set up
            return
        if reason_code.is_failure:
            link.reported = True
            self._fail(explain_connack(str(reason_code), self.cfg, link.way, self.box_id))
            client.disconnect()
            return
        link.acked = True
        self._connected = True
        self.connections += 1
        where = link.way.describe(self.cfg.host).removeprefix("broker ")
        if self.last_error is not None:
            log.info("uplink: connected to %s again", where)
        else:
            log.info("uplink: connected to %s (session %s)", where,
                     "resumed" if flags.session_present else "new")
        self.last_error = None
        self._said.clear()
        self._on_state(None)

    def _on_disconnect(self, client: mqtt.Client, link: Connection, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        link.detach()
        if link.reported or link.quiet or self._paused or self._closing or link is not self._link:
            return
        link.reported = True
        if link.acked:  # an established session: say why it ended, never blame the certificate
            # paho logs no text when a read finds the connection closed (EOF): the broker closed it.
            reason = link.error or (f"the broker said: {reason_code}" if flags.is_disconnect_packet_from_server
                                    else "the broker closed the connection" if str(reason_code) == "Unspecified error"
                                    else str(reason_code))
            err = explain_drop(reason, self.cfg, link.way)
            log.warning("uplink: %s", err)
            self.last_error = err
            self._on_state(err)
            return
        # Before CONNACK: with TLS 1.3 the broker judges the certificate only now, and says so in an alert.
        said = f"it said: {reason_code}" if flags.is_disconnect_packet_from_server else ""
        self._fail(explain_tls(early_error(link.error, said), self.cfg, link.way))

    def _on_publish(self, client: mqtt.Client, link: Connection, mid: int,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        """PUBACK for QoS 1: the broker holds the reading, so only now may its row go."""
        if link is not self._link:
            return  # a PUBACK of an earlier connection: its mids mean nothing now
        msg_id = self._in_flight.pop(mid, None)  # in_flight to acked in one step, on one thread
        if not self._in_flight:
            self._drained.set()
        if msg_id is None:
            return
        if not reason_code.is_failure:
            self._acked.append(msg_id)
            self._on_ack()
            return
        self._refused[msg_id] = time.monotonic()
        if str(reason_code) not in self._refusals:
            self._refusals.add(str(reason_code))
            log.warning("uplink: the broker refused message %s (%s); it stays in the outbox and is offered "
                        "again every %ds; check that the broker lets this certificate publish under "
                        "meterbox/v1/%s/", msg_id, reason_code, REFUSED_RETRY, self.box_id)

    def _fail(self, err: UplinkError) -> None:
        """Log a new failure of each way once; retries that fail the same way stay quiet."""
        if self._said.get(self.way) != str(err):
            log.warning("uplink: %s", err)
        self._said[self.way] = str(err)
        self.last_error = err
        self._on_state(err)

    # --- used by the daemon ------------------------------------------------------------
    def window(self) -> int:
        """How many more messages may be sent now."""
        if not self._connected or self._paused or self._closing:
            return 0
        return max(self.cfg.in_flight - len(self._in_flight), 0)

    def flying(self) -> set[str]:
        """Ids not to be offered now: handed to paho and not yet taken by take_acked(), or refused lately."""
        now = time.monotonic()
        for msg_id in [i for i, at in self._refused.items() if now - at > REFUSED_RETRY]:
            del self._refused[msg_id]
        return set(self._in_flight.values()) | set(self._acked) | set(self._refused)

    def publish(self, message: Message) -> bool:
        """Hand one outbox row to paho (it is written when the socket can take it); False if not connected."""
        link = self._link
        if link is None or not self._connected or self._paused or self._closing:
            return False
        info = link.client.publish(message.topic, message.wire().encode(), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._in_flight[info.mid] = message.id
        self._drained.clear()
        return True

    def take_acked(self) -> list[str]:
        out, self._acked = self._acked, []
        return out

