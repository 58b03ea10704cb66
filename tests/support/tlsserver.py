"""A small TLS server for what Mosquitto will not do: speak only TLS 1.0/1.1, record the SNI a
client sent, or refuse a box in its CONNACK.

Mosquitto 2.0.11's ``tls_version`` is a minimum (with ``tlsv1.1`` it still negotiates TLS 1.3),
so a broker that offers only old TLS versions is Python's ``ssl`` with ``maximum_version``
TLSv1_1 and ``@SECLEVEL=0`` (OpenSSL 3 refuses TLS 1.1 at its default level 2).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from pathlib import Path

from .pki import CertPair
from .process import Service

__all__ = ["TlsServer", "CONNACK_NOT_AUTHORIZED", "CONNACK_OK", "DISCONNECT_SHUTTING_DOWN"]

#: An MQTT v5 CONNACK: no session, reason 0x87 "Not authorized", no properties.
CONNACK_NOT_AUTHORIZED = bytes([0x20, 0x03, 0x00, 0x87, 0x00])
#: An MQTT v5 CONNACK that accepts, and a DISCONNECT "Server shutting down" (0x8B).
CONNACK_OK = bytes([0x20, 0x03, 0x00, 0x00, 0x00])
DISCONNECT_SHUTTING_DOWN = bytes([0xE0, 0x02, 0x8B, 0x00])


class TlsServer(Service):
    """Accepts TLS on 127.0.0.1:<port> with SERVER's certificate, requiring a client certificate
    of CA; records each SNI name; answers a client's first bytes with REPLY (if any, in one TLS
    record), then keeps the connection open for HOLD seconds or until the client closes it.
    """

    def __init__(self, server: CertPair, ca: Path, *, old_tls_only: bool = False, reply: bytes = b"",
                 hold: float = 0.0) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if old_tls_only:
            with warnings.catch_warnings():  # deprecated, and exactly what this server is for
                warnings.simplefilter("ignore", DeprecationWarning)
                self.context.minimum_version = ssl.TLSVersion.TLSv1
                self.context.maximum_version = ssl.TLSVersion.TLSv1_1
            self.context.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.context.load_cert_chain(str(server.cert), str(server.key))
        self.context.load_verify_locations(cafile=str(ca))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.sni_callback = self._sni
        self.reply = reply
        self.hold = hold
        self.names: list[str | None] = []
        self.errors: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tls-server", daemon=True)
        self._current: socket.socket | None = None

    def _sni(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
        self.names.append(name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._listener.close()
        if (current := self._current) is not None:
            with contextlib.suppress(OSError):
                current.shutdown(socket.SHUT_RDWR)  # ends a held connection at once
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            self._current = raw
            with raw:
                raw.settimeout(5)
                try:
                    with self.context.wrap_socket(raw, server_side=True) as tls:
                        if self.reply and tls.recv(1024):
                            tls.sendall(self.reply)
                        tls.settimeout(self.hold or None)
                        while self.hold and tls.recv(1024):
                            pass
                except (OSError, ssl.SSLError) as err:
                    self.errors.append(str(err))
