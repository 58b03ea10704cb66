"""One MQTT connection whose socket belongs to the event loop (paho's socket callbacks).

paho-mqtt runs here without a thread of its own, as its examples/loop_asyncio.py does: the
loop's reader and writer call loop_read() and loop_write(), a timer calls loop_misc() for the
keepalive, and publish() only queues (paho then asks for a writer). So every paho call, and
every byte on the TLS socket, happens on the event loop's thread: no lock, no second writer.

Only the blocking set-up (DNS, TCP, proxy CONNECT, TLS and WebSockets handshakes) runs in a
thread, inside client.connect(), while nothing else touches that client. Meanwhile paho's
socket callbacks only note the socket and whether paho wants to write (the CONNECT packet),
and attach() hands the socket to the loop, which then writes the CONNECT. A pause or a stop
during the set-up cuts it short (Client.abandon): nothing more reaches the vendor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any, Callable

import paho.mqtt.client as mqtt

from meterbox.uplink.tls import Way

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

log = logging.getLogger(__name__)

READS_PER_TURN = 64  # loop_read() calls per readable event; more TLS data waits one loop turn


class Client(mqtt.Client):
    """paho's client, whose set-up a pause or a stop cuts short at once.

    paho dials inside connect(): socket.create_connection(), then the TLS handshake, each
    blocking its thread up to the connect timeout. Closing the socket from another thread
    wakes neither on Linux; shutdown() does. So the TCP socket is made here and a duplicate
    of it kept while the set-up runs: abandon() shuts the connection down through it (shutdown
    acts on the connection, whichever descriptor paho's TLS socket now holds), and the set-up
    fails at once. The duplicate is closed when the set-up ends, so it never holds a
    connection open. Through a proxy the same holds: the socket is PySocks', dialled here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_lock = threading.Lock()
        self._setup_socket: socket.socket | None = None   # a duplicate, while the set-up runs
        self._abandoned = False

    def _create_socket_connection(self) -> socket.socket:
        self._check_abandoned()                   # before the DNS look-up too
        proxy = self._get_proxy()
        if not proxy:
            return self._dial(self._host, self._port, lambda family, kind, proto: socket.socket(family, kind, proto),
                              lambda sock, address: sock.connect(address))
        # As PySocks' create_connection: to the proxy's addresses, then CONNECT to the broker.
        import socks

        def through(family: int, kind: int, proto: int) -> socket.socket:
            sock: socket.socket = socks.socksocket(family, kind, proto)
            sock.set_proxy(proxy["proxy_type"], proxy["proxy_addr"], proxy["proxy_port"],  # type: ignore[attr-defined]
                           proxy.get("proxy_rdns", True), proxy.get("proxy_username"), proxy.get("proxy_password"))
            return sock
        return self._dial(proxy["proxy_addr"], proxy["proxy_port"], through,
                          lambda sock, _: sock.connect((self._host, self._port)))

    def _dial(self, host: str, port: int, make: Callable[[int, int, int], socket.socket],
              connect: Callable[[socket.socket, Any], None]) -> socket.socket:
        """Each address of HOST in turn, keeping a duplicate of the socket for abandon()."""
        last: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            try:
                sock = make(family, kind, proto)   # an address family this box lacks: the next address
            except OSError as err:
                last = err
                continue
            try:
                with self._setup_lock:
                    self._check_abandoned()
                    self._setup_socket = socket.socket(family, kind, proto, fileno=os.dup(sock.fileno()))
                sock.settimeout(self._connect_timeout)
                if self._bind_address or self._bind_port:
                    sock.bind((self._bind_address, self._bind_port))
                connect(sock, address)
                self._check_abandoned()           # abandoned between dup() and connect(): shutdown() missed it
                return sock
            except OSError as err:                # PySocks' ProxyError is one too
                last = err
                sock.close()
                self.setup_ended()
                if self._abandoned:
                    raise ConnectionAbortedError("set-up abandoned (paused or stopping)") from err
            except BaseException:
                sock.close()
                self.setup_ended()
                raise
        raise last or OSError(f"no address for {host}")

    def _check_abandoned(self) -> None:
        if self._abandoned:
            raise ConnectionAbortedError("set-up abandoned (paused or stopping)")

    def setup_ended(self) -> None:
        """Set-up thread: connect() has returned or failed; the duplicate goes."""
        with self._setup_lock:
            sock, self._setup_socket = self._setup_socket, None
        if sock is not None:
            sock.close()

    def abandon(self) -> None:
        """From the loop: a set-up still running fails at once (its TCP or TLS wait is woken)."""
        with self._setup_lock:
            self._abandoned = True
            if self._setup_socket is not None:
                with contextlib.suppress(OSError):
                    self._setup_socket.shutdown(socket.SHUT_RDWR)


class Connection:
    """A fresh paho client, set up in a thread, then run on the event loop until it ends.

    Made on the loop; `ended` is done once the socket is closed, whoever closed it.
    """

    def __init__(self, client: Client, way: Way, keepalive: float,
                 on_closed: Callable[[Connection], None]) -> None:
        self.client = client
        self.way = way
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acked = False         # CONNACK success: an established session
        self.reported = False      # its end (or refusal) has been said
        self.quiet = False         # we ended it (pause, close): nothing to report
        self.error = ""            # paho's last socket error text: the only place it says why a read failed
        self.closed = False
        self._sock: SocketLike | None = None
        self._attached = False     # set on the loop once connect() has returned: from then on, the loop's
        self._wants_write = False  # paho asked for a writer before the socket was on the loop
        self._keepalive = keepalive
        self._on_closed = on_closed
        self._misc_timer: asyncio.TimerHandle | None = None
        client.user_data_set(self)
        client.on_log = self._on_log
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write

    @property
    def attached(self) -> bool:
        return self._attached and not self.closed

    # --- set-up in a thread ------------------------------------------------------------
    def connect_in_thread(self, connect: Callable[[Client], object]) -> asyncio.Future[None]:
        """Run CONNECT(client) in a thread of its own; the future settles on the loop.

        Not the loop's executor: asyncio.run() waits for that at exit, and a connection that
        hangs (a silent firewall) would hold up the daemon's stop for the connect timeout.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def work() -> None:
            error: BaseException | None = None
            try:
                connect(self.client)
            except BaseException as err:  # handed to the loop, which explains it
                error = err
            finally:
                self.client.setup_ended()
            try:
                loop.call_soon_threadsafe(settle, error)
            except RuntimeError:  # the loop is gone (the daemon stopped): nobody takes this socket
                if self._sock is not None:
                    self._sock.close()

        threading.Thread(target=work, name="uplink-connect", daemon=True).start()
        return done

    def discard(self, connecting: asyncio.Future[None]) -> None:
        """Abandoned while it was set up (pause, close): cut the set-up short, close its socket once
        CONNECTING settles."""
        self.client.abandon()

        def close(_: asyncio.Future[None]) -> None:
            if not connecting.cancelled():
                connecting.exception()  # retrieved: of no interest now
            self.closed = True
            if self._sock is not None:
                self._sock.close()  # the CONNECT was never sent
            if not self.ended.done():
                self.ended.set_result(None)
        connecting.add_done_callback(close)

    # --- on the loop -------------------------------------------------------------------
    def attach(self) -> None:
        """connect() has returned: the socket is the loop's from now on."""
        loop = asyncio.get_running_loop()
        sock = self.client.socket()
        assert sock is not None, "paho's connect() returned without a socket"
        self._sock = sock
        self._attached = True
        loop.add_reader(sock, self._readable)
        if self._wants_write:
            loop.add_writer(sock, self._writable)
        self._misc()

    def end(self, grace: float | None) -> None:
        """Send DISCONNECT (we end it: nothing to report); after GRACE seconds, close the socket anyway."""
        if not self.attached:
            return
        self.quiet = True
        self.client.disconnect()
        if grace is not None:
            asyncio.get_running_loop().call_later(grace, self.abort)

    def abort(self) -> None:
        """Close the socket now, whatever paho is doing (a DISCONNECT that did not go, a bug)."""
        if not self.attached:
            return
        sock = self._sock
        self.detach()
        if sock is not None:
            sock.close()

    def detach(self) -> None:
        """The connection has ended (its socket is about to close): off the loop, once."""
        if self.closed:
            return
        if self._attached and self._sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock)
            loop.remove_writer(self._sock)
        self.closed = True
        if self._misc_timer:
            self._misc_timer.cancel()
        self._on_closed(self)
        if not self.ended.done():
            self.ended.set_result(None)

    def _guarded(self, step: Callable[[], Any]) -> None:
        """A bug in a callback must not end uploads for good: log it, drop the connection, reconnect."""
        if self.closed:
            return
        try:
            step()
        except Exception:
            log.exception("uplink: unexpected error in the MQTT client; reconnecting")
            self.abort()

    def _readable(self) -> None:
        def read() -> None:
            for _ in range(READS_PER_TURN):
                if self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS or self.closed:
                    return
                # Data TLS has already decrypted sits in the SSL object, not in the kernel's
                # socket: the selector would not wake for it, so read until it is empty.
                if not getattr(self._sock, "pending", lambda: 0)():
                    return
            asyncio.get_running_loop().call_soon(self._readable)
        self._guarded(read)

    def _writable(self) -> None:
        self._guarded(self.client.loop_write)

    def _misc(self) -> None:
        """Keepalive (PINGREQ, and giving up on a silent broker), a few times per keepalive."""
        self._guarded(self.client.loop_misc)
        if not self.closed:
            every = min(1.0, max(self._keepalive, 0.4) / 4)
            self._misc_timer = asyncio.get_running_loop().call_later(every, self._misc)

    # --- paho's callbacks: in the set-up thread until attach(), then on the loop ----------
    def _on_log(self, client: mqtt.Client, userdata: object, level: int, text: str) -> None:
        """paho reports socket errors only to its log; keep the last one to explain a drop."""
        if level == mqtt.MQTT_LOG_ERR:
            self.error = text

    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        self._sock = sock  # set-up thread: the loop takes it in attach()

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        if self._attached:
            self.detach()

    def _on_socket_register_write(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        if self.attached:
            asyncio.get_running_loop().add_writer(sock, self._writable)
        else:
            self._wants_write = True

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        if self.attached:
            asyncio.get_running_loop().remove_writer(sock)
        else:
            self._wants_write = False
