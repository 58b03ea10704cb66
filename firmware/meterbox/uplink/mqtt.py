"""The uplink: MQTT v5 over mutual TLS to the vendor broker, QoS 1, persistent session.

paho-mqtt runs its network loop in a thread of its own; the daemon's event loop owns
the store. The loop hands PUBACKs to the event loop through a queue, so a row leaves
the outbox only after the broker has it, and only the event loop writes SQLite.

Ways to the broker, for offices that block port 8883: MQTT over TLS on uplink.port, or
MQTT over WebSockets over TLS on uplink.websockets_port (443), either one through an
office proxy (HTTP CONNECT with Basic authentication, via PySocks, which paho uses for
proxies). With transport "auto" the next way is tried when one cannot be reached, and a
way that worked is kept. A TLS failure is never a reason to try another way (it says
the broker, the CA or the certificates are wrong, not the path), and TLS is equally
strict on every way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import re
import ssl
import threading
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
from meterbox.uplink.tls import Way, explain_tls, path_failure, tls_context, ways

log = logging.getLogger(__name__)

REFUSED_RETRY = 60  # seconds before a message the broker refused is offered again
SESSION_EXPIRY = 7 * 24 * 3600  # the broker keeps our session (and in-flight QoS 1) for a week


class Uplink:
    """Sends outbox rows; reports PUBACKs back; reconnects with back-off and jitter."""

    def __init__(self, cfg: UplinkConfig, box_id: str, *, on_ack: Callable[[], None] = lambda: None,
                 on_state: Callable[[UplinkError | None], None] = lambda e: None) -> None:
        self.cfg = cfg
        self.box_id = box_id
        self.acked: collections.deque[str] = collections.deque()   # message ids, filled by paho's thread
        self.in_flight: dict[int, str] = {}                        # mid -> message id
        self._early: set[int] = set()                              # PUBACKs that beat publish()
        self.connected = threading.Event()
        self.last_error: UplinkError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_state = on_state
        self._on_ack = on_ack
        self.connections = 0                                       # successful CONNACKs so far
        self.ways = ways(cfg)
        self.way = self.ways[0]
        self._said: dict[Way, type[UplinkError]] = {}              # kind of the last error logged, per way
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._client = self._new_client()
        self._thread: threading.Thread | None = None
        self._socket_error = ""                                    # paho's last socket error text
        self.refused: dict[str, float] = {}                        # message id -> when the broker refused it
        self._refusals: set[str] = set()                           # refusal reasons already logged

    # --- lifecycle ---------------------------------------------------------------
    def _new_client(self) -> mqtt.Client:
        # reconnect_on_failure=False: paho would reconnect with the same TLS context (the old
        # certificate) and the same way; _run() reconnects with fresh ones instead.
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.box_id, protocol=mqtt.MQTTv5,
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
        client.on_log = self._on_log
        client.max_inflight_messages_set(max(self.cfg.in_flight, 1))
        return client

    def on_ack(self) -> None:  # from paho's thread: hand over to the loop
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_ack)

    def on_error(self, err: UplinkError | None) -> None:  # from paho's thread
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_state, err)

    @property
    def connected_now(self) -> bool:
        return self.connected.is_set()

    async def run(self) -> None:
        """Run the connection loop (in paho's thread) until close()."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()
        while self._thread.is_alive():
            await asyncio.sleep(0.2)

    async def close(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._client.disconnect()
        if self._thread:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def pause(self) -> None:
        """No connection to the vendor at all (not even DNS) until resume()."""
        if not self._paused.is_set():
            self._paused.set()
            self._client.disconnect()

    def resume(self) -> None:
        self._paused.clear()

    def _run(self) -> None:
        delay = 1.0
        tried = 0  # ways that could not be reached since the last back-off
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(0.2)
                continue
            try:
                self._connect()
            except Exception as err:  # each failure becomes one clear error, then back-off
                self._fail(explain_tls(err, self.cfg, self.way))
                if path_failure(err) and len(self.ways) > 1:
                    self.way = self.ways[(self.ways.index(self.way) + 1) % len(self.ways)]
                    tried += 1
                    if tried < len(self.ways):
                        continue  # the next way at once; back off once all have failed
                tried = 0
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 300.0)
                continue
            tried = 0
            if self._paused.is_set() or self._stop.is_set():  # paused while connecting
                self._client.disconnect()
            try:
                self._client.loop_forever(retry_first_connection=False)
            except Exception:  # a bug in a callback must not end uploads for good
                log.exception("uplink: unexpected error in the MQTT loop; reconnecting")
            if self.connected.is_set():
                self.connected.clear()
            if self.last_error is None:
                delay = 1.0
            self._stop.wait(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 300.0)

    def _connect(self) -> None:
        # A fresh client per connection: the outbox, not paho's memory, decides what is resent
        # (same message ids), and a fresh TLS context picks up renewed certificate files.
        client = self._new_client()
        client.tls_set_context(tls_context(self.cfg))
        self._client = client
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY
        self._client.connect(self.cfg.host, self.way.port, keepalive=int(self.cfg.keepalive),
                             clean_start=False, properties=props)

    def _fail(self, err: UplinkError) -> None:
        """Log a new kind of failure of each way once; retries that fail the same way stay quiet."""
        if self._said.get(self.way) is not type(err):
            log.warning("uplink: %s", err)
        self._said[self.way] = type(err)
        self.last_error = err
        self.on_error(err)

    # --- paho callbacks (paho's thread) ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if self._paused.is_set() or self._stop.is_set():
            client.disconnect()  # pause pressed while this connection was being set up
            return
        if reason_code.is_failure:
            self._fail(UplinkError(f"{self.way.describe(self.cfg.host)} refused box {self.box_id}: "
                                   f"{reason_code}; check that the box is enrolled and its certificate is current"))
            client.disconnect()
            return
        where = self.way.describe(self.cfg.host).removeprefix("broker ")
        if self.last_error is not None:
            log.info("uplink: connected to %s again", where)
        else:
            log.info("uplink: connected to %s (session %s)", where,
                     "resumed" if flags.session_present else "new")
        self.last_error = None
        self._said.clear()
        self.connections += 1
        self.on_error(None)
        self.connected.set()

    def _on_log(self, client: mqtt.Client, userdata: object, level: int, text: str) -> None:
        """paho reports socket errors only to its log; keep the last one to explain a drop."""
        if level == mqtt.MQTT_LOG_ERR:
            self._socket_error = text

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if not was and not self._paused.is_set() and not self._stop.is_set():
            # Dropped before CONNACK: with TLS 1.3 a refused client certificate shows up only here.
            text, self._socket_error = self._socket_error, ""
            reason = re.sub(r"^failed to receive on socket: |\[SSL: [A-Z0-9_]+\] | \(_ssl\.c:\d+\)", "", text)
            err: BaseException = ssl.SSLError(reason) if ("alert" in text.lower() or "ssl" in text.lower()) \
                else ConnectionError(reason or f"closed by the broker ({reason_code})")
            self._fail(explain_tls(err, self.cfg, self.way))
        if was and not self._paused.is_set() and not self._stop.is_set():
            log.warning("uplink: disconnected from %s (%s); readings are kept and sent on reconnect",
                        self.way.describe(self.cfg.host).removeprefix("broker "), reason_code)
        with self._lock:
            self.in_flight.clear()  # the outbox still has them; they are sent again with the same ids
            self._early.clear()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        """PUBACK for QoS 1: the broker holds the reading, so only now may its row go."""
        if client is not self._client:
            return  # a PUBACK of an earlier connection: its mids mean nothing now
        with self._lock:  # in_flight to acked in one step: flying() never misses a message between them
            msg_id = self.in_flight.pop(mid, None)
            if msg_id is None and not reason_code.is_failure:
                self._early.add(mid)
            elif msg_id is not None and not reason_code.is_failure:
                self.acked.append(msg_id)
            elif msg_id is not None:
                self.refused[msg_id] = time.monotonic()
        if msg_id is not None and not reason_code.is_failure:
            self.on_ack()
        elif msg_id is not None and str(reason_code) not in self._refusals:
            self._refusals.add(str(reason_code))
            log.warning("uplink: the broker refused message %s (%s); it stays in the outbox and is offered "
                        "again every %ds; check that the broker lets this certificate publish under "
                        "meterbox/v1/%s/", msg_id, reason_code, REFUSED_RETRY, self.box_id)

    # --- used by the daemon's loop ---------------------------------------------------
    def window(self) -> int:
        """How many more messages may be sent now."""
        if not self.connected.is_set() or self._paused.is_set():
            return 0
        with self._lock:
            return max(self.cfg.in_flight - len(self.in_flight), 0)

    def flying(self) -> set[str]:
        """Ids not to be offered now: handed to paho and not yet taken by take_acked(), or refused lately."""
        now = time.monotonic()
        with self._lock:
            for msg_id in [i for i, at in self.refused.items() if now - at > REFUSED_RETRY]:
                del self.refused[msg_id]
            return set(self.in_flight.values()) | set(self.acked) | set(self.refused)

    def publish(self, message: Message) -> bool:
        """Hand one outbox row to paho; False if not connected.

        paho's own lock is taken inside publish() and around on_publish, so ours is never
        held across a paho call (lock-order inversion); a PUBACK that beats us here is kept
        in `_early` until its mid is known.
        """
        client = self._client
        info = client.publish(message.topic, message.wire().encode(), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        with self._lock:
            if client is not self._client or not self.connected.is_set():
                return False  # dropped meanwhile: this mid belongs to a dead connection
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked.append(message.id)
            else:
                self.in_flight[info.mid] = message.id
        return True

    def take_acked(self) -> list[str]:
        with self._lock:
            out = list(self.acked)
            self.acked.clear()
        return out
