"""The uplink against a real Mosquitto: WebSockets on 443 when 8883 is blocked, an office proxy
(tinyproxy) in the path, and strict TLS: a wrong CA, a wrong name or an expired certificate
stops the upload with its own clear error and nothing leaves; a renewed client certificate
file is used without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from support import require
from support.broker import Broker
from support.daemon import BOX_ID, BoxConfig, Daemon, PrinterEntry
from support.pki import CertPair, Pki
from support.process import free_tcp_port
from support.proxy import INSTALL_TINYPROXY, Proxy
from support.snmpsim import Simulator
from support.subscriber import Subscriber

HP = "jetdirect_m130nw"


@pytest.fixture(scope="module")
def ws_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(pki, work_dir=tmp_path_factory.mktemp("ws-broker"), websockets=True) as broker:
        yield broker


def mine(sub: Subscriber) -> list[str]:
    return [m.json["id"] for m in sub.messages if m.box == BOX_ID and m.kind == "readings"]


def blocked_port() -> int:
    """A port where nothing listens: connecting is refused, as at a firewall that rejects 8883."""
    return free_tcp_port()


def test_blocked_8883_falls_back_to_websockets_on_its_port(
        tmp_path: Path, printers: Simulator, ws_broker: Broker) -> None:
    assert ws_broker.ws_port
    box = BoxConfig(state_dir=tmp_path / "state", broker=ws_broker, port=blocked_port(),
                    printers=[PrinterEntry(printers.address, HP)],
                    uplink_extra=f"websockets_port = {ws_broker.ws_port}")
    with Subscriber(ws_broker) as sub, Daemon(box.write(tmp_path / "meterbox.toml"), tmp_path) as daemon:
        sub.wait_for(lambda ms: len(mine(sub)) >= 2, timeout=30)
        daemon.wait_log(rf"connected to 127\.0\.0\.1:{ws_broker.ws_port} \(MQTT over WebSockets\)")
    log = daemon.log()
    assert "cannot connect" in log and f"port {box.port} is not blocked" in log  # said why, once
    assert log.count("cannot connect") == 1


def test_websockets_through_an_authenticating_http_proxy(
        tmp_path: Path, printers: Simulator, ws_broker: Broker) -> None:
    require("tinyproxy", INSTALL_TINYPROXY)
    assert ws_broker.ws_port
    with Proxy(connect_ports=[ws_broker.ws_port], work_dir=tmp_path / "proxy") as proxy:
        # 8883 is not allowed by the proxy (403), so the box goes on to WebSockets on its port.
        box = BoxConfig(state_dir=tmp_path / "state", broker=ws_broker, port=blocked_port(),
                        printers=[PrinterEntry(printers.address, HP)],
                        uplink_extra=f'websockets_port = {ws_broker.ws_port}\nproxy = "{proxy.url()}"')
        with Subscriber(ws_broker) as sub, Daemon(box.write(tmp_path / "meterbox.toml"), tmp_path) as daemon:
            sub.wait_for(lambda ms: len(mine(sub)) >= 2, timeout=30)
            daemon.wait_log(r"connected to 127\.0\.0\.1:\d+ \(MQTT over WebSockets\) via proxy 127\.0\.0\.1:\d+")
        proxy_log = proxy.log()
    assert f"CONNECT 127.0.0.1:{ws_broker.ws_port}" in proxy_log
    assert f"Refused CONNECT method on port {box.port}" in proxy_log
    assert proxy.password not in daemon.log()  # the proxy password never prints


def test_a_wrong_proxy_password_is_one_clear_error(
        tmp_path: Path, printers: Simulator, ws_broker: Broker) -> None:
    require("tinyproxy", INSTALL_TINYPROXY)
    assert ws_broker.ws_port
    with Proxy(connect_ports=[ws_broker.ws_port], work_dir=tmp_path / "proxy") as proxy:
        box = BoxConfig(state_dir=tmp_path / "state", broker=ws_broker, printers=[PrinterEntry(printers.address, HP)],
                        uplink_extra=f'transport = "websockets"\nwebsockets_port = {ws_broker.ws_port}\n'
                                     f'proxy = "{proxy.url(password="wrong-one")}"')
        with Subscriber(ws_broker) as sub, Daemon(box.write(tmp_path / "meterbox.toml"), tmp_path) as daemon:
            daemon.wait_log(r"refused the box's proxy user name or password \(40[17]\)", timeout=20)
            daemon.wait_status(lambda s: s["backlog"] >= 3, timeout=20)
        assert mine(sub) == []
    lines = [line for line in daemon.log().splitlines() if "proxy user name or password" in line]
    assert len(lines) == 1 and "check the user:password in uplink.proxy" in lines[0]
    assert "wrong-one" not in daemon.log()


# ------------------------------------------------------------------ strict TLS

TLS_CASES = {
    "wrong CA": ("ca", r"its certificate is not signed by the vendor CA in .*other-ca\.crt"),
    "wrong host name": ("server_wrong_name", r"its certificate is not valid for the name '127\.0\.0\.1'"),
    "expired": ("server_expired", r"its certificate has expired \(or this box's clock is wrong\)"),
}


@pytest.mark.parametrize("case", list(TLS_CASES))
def test_tls_failures_are_clear_and_nothing_leaves(tmp_path: Path, pki: Pki, printers: Simulator,
                                                   case: str) -> None:
    what, expected = TLS_CASES[case]
    server = getattr(pki, what) if what != "ca" else None
    # No subscriber: it could not trust such a broker either. The broker's log shows what arrived.
    with Broker(pki, work_dir=tmp_path / "broker", server=server, websockets=True) as broker:
        box = BoxConfig(state_dir=tmp_path / "state", broker=broker, printers=[PrinterEntry(printers.address, HP)],
                        uplink_extra=f"websockets_port = {broker.ws_port}")
        config = box.write(tmp_path / "meterbox.toml")
        if what == "ca":  # the box trusts another CA than the one that signed the broker
            config.write_text(config.read_text().replace(str(broker.ca_file), str(pki.other_ca_cert)))
        with Daemon(config, tmp_path) as daemon:
            daemon.wait_log(expected, timeout=20)
            daemon.wait_status(lambda s: s["backlog"] >= 3, timeout=20)  # readings are kept
        assert f"as {BOX_ID} " not in broker.log()                     # never connected,
        assert f"Received PUBLISH from {BOX_ID}" not in broker.log()   # so nothing was published
    log = daemon.log()
    assert "nothing was sent" in log
    assert "WebSockets" not in log  # a TLS failure is not a blocked port: no other way is tried
    assert len([line for line in log.splitlines() if "uplink:" in line and "certificate" in line]) == 1


def test_a_renewed_client_certificate_is_used_without_restart(
        tmp_path: Path, pki: Pki, printers: Simulator, broker: Broker) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    live = CertPair(certs / "box.crt", certs / "box.key")
    expired = pki.client(BOX_ID, expired=True)
    shutil.copy(expired.cert, live.cert)
    shutil.copy(expired.key, live.key)
    box = BoxConfig(state_dir=tmp_path / "state", broker=broker, cert=live,
                    printers=[PrinterEntry(printers.address, HP)])
    with Subscriber(broker) as sub, Daemon(box.write(tmp_path / "meterbox.toml"), tmp_path) as daemon:
        daemon.wait_log(r"this box's certificate .*box\.crt has expired \(TLS alert: certificate expired\)", timeout=20)
        assert mine(sub) == []
        fresh = pki.client(BOX_ID)
        shutil.copy(fresh.key, live.key)  # renewal writes the new pair in place
        shutil.copy(fresh.cert, live.cert)
        sub.wait_for(lambda ms: len(mine(sub)) >= 3, timeout=60)
        assert daemon.running
