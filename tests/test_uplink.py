"""The Uplink in-process on an event loop, against real Mosquitto brokers (and a small TLS server
for what Mosquitto will not do): one owner for the socket, the window, pause and close, each way
a connection fails named for what it is, and uplink.server_name."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

import meterbox.uplink.mqtt
from meterbox.config import ProxyConfig, UplinkConfig
from meterbox.errors import UplinkError
from meterbox.outbox.store import Message
from meterbox.uplink.mqtt import Uplink
from support import INSTALL_MOSQUITTO, require
from support.broker import Broker
from support.loop import wait_until
from support.daemon import BOX_ID
from support.pki import CertPair, Pki
from support.tlsserver import CONNACK_NOT_AUTHORIZED, CONNACK_OK, DISCONNECT_SHUTTING_DOWN, TlsServer

LOGGER = "meterbox.uplink.mqtt"


@pytest.fixture(scope="module")
def ws_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    require("mosquitto", INSTALL_MOSQUITTO)
    with Broker(pki, work_dir=tmp_path_factory.mktemp("ws-broker"), websockets=True) as broker:
        yield broker


def config(broker: Broker | None = None, *, port: int = 0, cert: CertPair | None = None, ca: Path | None = None,
           **more: Any) -> UplinkConfig:
    pki_cert = cert or (broker.client_cert(BOX_ID) if broker else None)
    assert pki_cert is not None
    return UplinkConfig(host="127.0.0.1", port=port or (broker.port if broker else 0),
                        ca_file=ca or (broker.ca_file if broker else None), cert_file=pki_cert.cert,
                        key_file=pki_cert.key, keepalive=more.pop("keepalive", 5.0),
                        transport=more.pop("transport", "mqtt"), **more)


def message(i: int, topic: str = f"meterbox/v1/{BOX_ID}/devices") -> Message:
    body = f'{{"v":1,"id":"m{i:05d}","box":"{BOX_ID}","serial":"S{i}","manufacturer":"T","model":"M"}}'
    return Message(seq=i, id=f"m{i:05d}", kind="device", serial=f"S{i}", topic=topic, payload=body,
                   created=0.0, sent_at=None)


class Box:
    """An Uplink on this test's event loop, and what its callbacks said."""

    def __init__(self, cfg: UplinkConfig) -> None:
        self.states: list[UplinkError | None] = []
        self.acks = 0
        self.uplink = Uplink(cfg, BOX_ID, on_ack=self._ack, on_state=self.states.append)
        self.task: asyncio.Task[None] | None = None

    def _ack(self) -> None:
        self.acks += 1

    async def __aenter__(self) -> Box:
        self.task = asyncio.create_task(self.uplink.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.uplink.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}; last error: {self.uplink.last_error}")
            await asyncio.sleep(0.02)

    async def send(self, messages: list[Message]) -> list[str]:
        """Publish MESSAGES through the window, as the daemon's pump does; return the ids acknowledged."""
        todo, acked = list(messages), []
        while todo or len(acked) < len(messages):
            acked += self.uplink.take_acked()
            for _ in range(self.uplink.window()):
                if not todo or not self.uplink.publish(todo[0]):
                    break
                todo.pop(0)
            await asyncio.sleep(0.005)
        return acked


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def uplink_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# ------------------------------------------------------------------ one owner for the socket

@pytest.mark.parametrize("transport", ["mqtt", "websockets"])
def test_every_byte_on_the_socket_moves_on_the_event_loop_thread(
        monkeypatch: pytest.MonkeyPatch, ws_broker: Broker, transport: str) -> None:
    """Before, paho's loop thread and the asyncio thread both wrote the TLS socket (PUBLISHes
    released by PUBACKs, PINGREQs): Mosquitto then read garbage ("bad record mac")."""
    calls: dict[int, list[str]] = defaultdict(list)  # socket -> the thread of each send/recv, in order
    lock = threading.Lock()
    for name in ("send", "recv"):
        original = getattr(ssl.SSLSocket, name)

        def spy(self: ssl.SSLSocket, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                calls[id(self)].append(threading.current_thread().name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(ssl.SSLSocket, name, spy)
    assert ws_broker.ws_port
    cfg = config(ws_broker, keepalive=1.0, transport=transport, websockets_port=ws_broker.ws_port)

    async def test() -> None:
        async with Box(cfg) as box:
            await box.until(lambda: box.uplink.connected, what="connected")
            acked = await box.send([message(i) for i in range(400)])
            assert sorted(acked) == [message(i).id for i in range(400)]
            await asyncio.sleep(3.5)  # idle: PINGREQs every keepalive (1 s)
            assert box.uplink.connected and box.uplink.connections == 1
            assert box.acks == 400

    run(test)
    main = threading.main_thread().name
    assert len(calls) == 1, "one connection, one socket"
    (threads,) = calls.values()
    on_loop = threads.index(main)  # before it: the WebSockets upgrade in the worker that connects
    assert set(threads[on_loop:]) == {main}, f"{len(threads[on_loop:]) - threads[on_loop:].count(main)} " \
                                             "sends or reads from another thread once the socket was the loop's"
    assert transport == "websockets" or on_loop == 0
    assert len(threads) > 800


def test_packets_that_tls_has_already_decrypted_are_read_at_once(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """CONNACK and DISCONNECT in one TLS record: paho reads the first, the second waits in the SSL
    object, and the selector does not wake for it (the kernel's socket is empty)."""
    server = TlsServer(pki.server, pki.ca_cert, reply=CONNACK_OK + DISCONNECT_SHUTTING_DOWN, hold=10)
    cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=server.port, keepalive=60)

    async def test() -> None:
        async with Box(cfg) as box:
            await box.until(lambda: box.uplink.connections == 1, what="connected")
            # at once, not when the server ends its 10 s hold (loaded machines: a few seconds of slack)
            await box.until(lambda: box.uplink.last_error is not None, timeout=5.0, what="the DISCONNECT read")

    with server, caplog.at_level(logging.INFO, LOGGER):
        run(test)
    assert any(line.startswith(f"uplink: disconnected from 127.0.0.1:{server.port} (the broker said: Server "
                               "shutting down); readings are kept") for line in uplink_lines(caplog))


def test_a_refused_message_frees_its_window_slot_and_is_offered_again_later(
        monkeypatch: pytest.MonkeyPatch, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(meterbox.uplink.mqtt, "REFUSED_RETRY", 1)
    cfg = config(broker, in_flight=3)
    other = message(1, topic="meterbox/v1/SOMEONE-ELSE/readings")  # the broker's ACL refuses it

    async def test() -> None:
        async with Box(cfg) as box:
            await box.until(lambda: box.uplink.connected, what="connected")
            assert box.uplink.window() == 3
            assert box.uplink.publish(other)
            assert box.uplink.window() == 2 and box.uplink.flying() == {other.id}
            await box.until(lambda: box.uplink.window() == 3, timeout=5, what="the slot freed")
            assert box.uplink.flying() == {other.id}  # refused lately: not offered now
            assert box.uplink.take_acked() == [] and box.acks == 0
            await asyncio.sleep(1.2)
            assert box.uplink.flying() == set()  # offered again after REFUSED_RETRY
            assert await box.send([message(2)]) == [message(2).id]  # the window still works

    with caplog.at_level(logging.INFO, LOGGER):
        run(test)
    refused = [line for line in uplink_lines(caplog) if "refused message" in line]
    assert len(refused) == 1 and "Not authorized" in refused[0]


def test_pause_closes_within_a_second_and_connects_no_more_until_resume(broker: Broker) -> None:
    cfg = config(broker)
    earlier = len(broker.log())     # the session's broker: earlier tests' lines are not this one's

    async def test() -> None:
        async with Box(cfg) as box:
            await box.until(lambda: box.uplink.connected, what="connected")
            box.uplink.pause()
            assert box.uplink.paused and box.uplink.window() == 0 and not box.uplink.publish(message(1))
            started = time.monotonic()
            await box.until(lambda: not box.uplink.connected, timeout=1.0, what="closed")
            assert time.monotonic() - started < 1.0
            connects = broker.log().count(f"as {BOX_ID} ")
            await asyncio.sleep(2.5)  # more than the first back-off
            assert broker.log().count(f"as {BOX_ID} ") == connects and box.uplink.connections == 1
            box.uplink.resume()
            await box.until(lambda: box.uplink.connected, what="connected again")
            assert box.uplink.connections == 2

    run(test)
    # a clean DISCONNECT at the pause (not a dropped socket), and another at the end (logged a moment later)
    assert wait_until(lambda: broker.log()[earlier:].count(f"Received DISCONNECT from {BOX_ID}") == 2, 5), \
        broker.log()[earlier:][-3000:]


def test_close_disconnects_cleanly_within_its_timeout_and_run_returns(pki: Pki, tmp_path: Path) -> None:
    async def test(cfg: UplinkConfig) -> None:
        box = Box(cfg)
        task = asyncio.create_task(box.uplink.run())
        await box.until(lambda: box.uplink.connected, what="connected")
        assert box.uplink.publish(message(1))
        started = time.monotonic()
        closing = asyncio.create_task(box.uplink.close(timeout=1.0))
        await asyncio.sleep(0)  # close() has begun: it waits for the PUBACK in flight
        assert box.uplink.window() == 0 and not box.uplink.publish(message(3))  # no new window
        await closing
        assert time.monotonic() - started < 1.1
        await asyncio.wait_for(task, 0.5)
        assert not box.uplink.connected and box.uplink.window() == 0 and not box.uplink.publish(message(2))
        assert box.uplink.take_acked() == [message(1).id]  # its PUBACK came during close

    with Broker(pki, work_dir=tmp_path / "broker") as broker:  # its own: the log shows only this box's end
        run(lambda: test(config(broker)))
        deadline = time.monotonic() + 5  # the broker logs it a moment after the box has closed
        while f"Client {BOX_ID} disconnected." not in broker.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        log = broker.log()
    assert f"Received DISCONNECT from {BOX_ID}" in log and f"Client {BOX_ID} disconnected." in log
    ours = [line for line in log.splitlines() if BOX_ID in line]
    assert not any("closed its connection" in line or "Socket error" in line for line in ours), ours


class StallingBroker:
    """Accepts TCP and never answers (TLS, or a proxy's CONNECT): the box's set-up waits."""

    def __init__(self) -> None:
        import socket
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.hello, self.gone = threading.Event(), threading.Event()   # of the first connection
        self.accepted: list[Any] = []
        self.said = b""
        self._hellos = threading.Condition()
        self.hellos = 0

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:                   # closed at the end of the test
                return
            self.accepted.append(conn)
            threading.Thread(target=self._stall, args=(conn, len(self.accepted) == 1), daemon=True).start()

    def _stall(self, conn: Any, first: bool) -> None:
        said = conn.recv(4096)
        if said:                              # the box's ClientHello (or CONNECT): set-up is under way
            with self._hellos:
                self.hellos += 1
                self._hellos.notify_all()
            if first:
                self.said = said
                self.hello.set()
        while conn.recv(4096):                # ... until the box closes or shuts down the connection
            pass
        if first:
            self.gone.set()

    def wait_hellos(self, count: int, timeout: float) -> bool:
        with self._hellos:
            return self._hellos.wait_for(lambda: self.hellos >= count, timeout)

    def __enter__(self) -> StallingBroker:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.parametrize("resumed", [False, True], ids=["first", "after-resume"])
def test_close_does_not_wait_for_a_connection_that_hangs(pki: Pki, resumed: bool) -> None:
    """A broker that accepts TCP and never answers TLS: a stop does not wait for the handshake.
    After a pause cut the first one short, a resume dials again (and a stop does not wait for
    that one either)."""
    with StallingBroker() as stalling:
        cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=stalling.port)

        async def test() -> None:
            box = Box(cfg)
            task = asyncio.create_task(box.uplink.run())
            assert await asyncio.to_thread(stalling.hello.wait, 10), "the box never started its TLS handshake"
            if resumed:
                box.uplink.pause()
                assert await asyncio.to_thread(stalling.gone.wait, 5), "the pause left the connection open"
                box.uplink.resume()
                assert await asyncio.to_thread(stalling.wait_hellos, 2, 15), "no new attempt after resume"
            started = time.monotonic()
            await box.uplink.close(timeout=1.0)
            await asyncio.wait_for(task, 1.0)
            assert time.monotonic() - started < 1.0
            assert box.uplink.connections == 0 and not any(box.states)

        run(test)


@pytest.mark.parametrize("stalls", ["broker", "proxy"])
def test_a_pause_during_the_set_up_cuts_it_short_at_once(pki: Pki, stalls: str) -> None:
    """A broker that accepts TCP and stalls its TLS handshake, or an HTTP proxy that takes the
    CONNECT and never answers: a pause (the button) ends the contact within a second, not when
    the connect timeout runs out, and says nothing went wrong."""
    with StallingBroker() as stalling:
        if stalls == "broker":
            cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=stalling.port)
        else:
            cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=8883,
                         proxy=ProxyConfig("http", "127.0.0.1", stalling.port))

        async def test() -> None:
            async with Box(cfg) as box:
                assert await asyncio.to_thread(stalling.hello.wait, 10), f"the box never started its set-up ({stalls})"
                box.uplink.pause()
                started = time.monotonic()
                assert await asyncio.to_thread(stalling.gone.wait, 5), "the box kept the connection open"
                assert time.monotonic() - started < 1.0, f"closed {time.monotonic() - started:.1f} s after the pause"
                assert box.uplink.connections == 0 and box.uplink.last_error is None and not any(box.states)

        run(test)
    if stalls == "proxy":
        assert stalling.said.startswith(b"CONNECT 127.0.0.1:8883 "), stalling.said


# ------------------------------------------------------------------ a failure named for what it is

def _crl_broker(pki: Pki, work: Path) -> Broker:
    return Broker(pki, work_dir=work, crl=pki.crl([pki.client("MB-REVOKED")], name="crl-revoked"))


CAUSES: dict[str, tuple[str, str, bool]] = {
    # case: (what, the sentence, whether it says to re-enroll)
    "revoked": ("crl", r"the vendor has revoked this box's certificate .*client-MB-REVOKED\.crt \(TLS alert: "
                       r"certificate revoked\); nothing was sent; ask the vendor why", False),
    "client cert of another CA": ("other-ca", r"the broker does not know the CA that issued this box's "
                                              r"certificate .*\(TLS alert: unknown CA\).*re-enroll the box", True),
    "expired client cert": ("expired", r"the broker says this box's certificate .* has expired \(TLS alert: "
                                       r"certificate expired\)", True),
    "broker cert of another CA": ("wrong-ca", r"its certificate is not signed by the vendor CA in .*other-ca\.crt",
                                  False),
    "TLS 1.0/1.1 only": ("tls11", r"the broker offers only TLS 1.0/1.1, which this box refuses as insecure "
                                  r"\(TLS 1\.2 or 1\.3 is needed; .*protocol version\); nothing was sent", False),
    "CONNACK not authorized": ("connack", rf"refused box {BOX_ID} \(Not authorized\): its certificate .* is not "
                                          r"allowed to connect; nothing was sent; .*re-enroll it", True),
}


@pytest.mark.parametrize("case", list(CAUSES))
def test_a_failed_connection_says_what_failed(case: str, pki: Pki, broker: Broker, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    what, sentence, re_enroll = CAUSES[case]
    servers: list[Broker | TlsServer] = []
    if what == "crl":
        crl_broker = _crl_broker(pki, tmp_path / "broker")
        servers.append(crl_broker)
        cfg = config(crl_broker, cert=pki.client("MB-REVOKED"))
    elif what == "other-ca":
        cfg = config(broker, cert=pki.client(BOX_ID, ca="other-ca"))
    elif what == "expired":
        cfg = config(broker, cert=pki.client(BOX_ID, expired=True))
    elif what == "wrong-ca":
        cfg = config(broker, ca=pki.other_ca_cert)
    else:
        servers.append(TlsServer(pki.server, pki.ca_cert, old_tls_only=what == "tls11",
                                 reply=CONNACK_NOT_AUTHORIZED if what == "connack" else b""))
        cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=servers[0].port)

    async def test() -> None:
        async with Box(cfg) as box:
            await box.until(lambda: box.uplink.last_error is not None, what="an error")
            # a retry (back-off from 1 s) fails the same way: said once, not each time
            await box.until(lambda: len(box.states) >= 2, timeout=10, what="a second attempt")
            assert box.uplink.connections == 0 and not box.uplink.connected
            assert box.states and all(s is not None for s in box.states)

    for server in servers:
        server.start()
    try:
        with caplog.at_level(logging.INFO, LOGGER):
            run(test)
    finally:
        for server in servers:
            server.stop()
    lines = uplink_lines(caplog)
    assert len(lines) == 1, lines
    assert re.search(sentence, lines[0]), lines[0]
    assert ("re-enroll" in lines[0]) == re_enroll
    assert "disconnected" not in lines[0]


def test_a_broker_restart_under_an_established_session_is_a_disconnect_not_a_certificate(
        pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Broker(pki, work_dir=tmp_path / "broker") as broker:
        cfg = config(broker)

        async def test() -> None:
            async with Box(cfg) as box:
                await box.until(lambda: box.uplink.connected, what="connected")
                await asyncio.to_thread(broker.stop)
                await box.until(lambda: not box.uplink.connected, what="dropped")
                err = box.uplink.last_error
                assert err is not None and box.states[-1] is err
                assert box.uplink.window() == 0 and not box.uplink.publish(message(1))
                await asyncio.to_thread(broker.start)
                await box.until(lambda: box.uplink.connected, timeout=20, what="connected again")
                assert box.uplink.last_error is None and box.states[-1] is None
                assert await box.send([message(2)]) == [message(2).id]

        with caplog.at_level(logging.INFO, LOGGER):
            run(test)
    lines = uplink_lines(caplog)
    drops = [line for line in lines if line.startswith("uplink: disconnected")]
    assert len(drops) == 1, lines
    assert re.fullmatch(rf"uplink: disconnected from 127\.0\.0\.1:{broker.port} \(.+\); readings are kept and "
                        "sent on reconnect", drops[0]), drops[0]
    assert not any("certificate" in line or "re-enroll" in line for line in lines), lines
    assert lines[-1] == f"uplink: connected to 127.0.0.1:{broker.port} again"


# ------------------------------------------------------------------ uplink.server_name

def test_server_name_is_the_name_checked_while_host_is_the_address_dialled(
        pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The broker's certificate is for wrong.example only; the box dials 127.0.0.1."""
    with Broker(pki, work_dir=tmp_path / "broker", server=pki.server_wrong_name) as broker:
        async def connects(cfg: UplinkConfig) -> UplinkError | None:
            async with Box(cfg) as box:
                await box.until(lambda: box.uplink.connected or box.uplink.last_error is not None)
                return box.uplink.last_error

        assert asyncio.run(connects(config(broker, server_name="wrong.example"))) is None
        err = asyncio.run(connects(config(broker, server_name="right.example")))
        assert "its certificate is not valid for the name 'right.example'" in str(err)
        assert "check uplink.server_name" in str(err)
        err = asyncio.run(connects(config(broker)))
        assert "not valid for the name '127.0.0.1'" in str(err) and "check uplink.host" in str(err)


def test_server_name_is_the_name_sent_in_sni(pki: Pki) -> None:
    server = TlsServer(pki.server_wrong_name, pki.ca_cert)
    cfg = config(cert=pki.client(BOX_ID), ca=pki.ca_cert, port=server.port, server_name="wrong.example")

    async def test() -> None:
        async with Box(cfg) as box:  # the handshake succeeds; this server speaks no MQTT
            await box.until(lambda: bool(server.names) and box.uplink.last_error is not None)

    with server:
        run(test)
    assert server.names[0] == "wrong.example"
