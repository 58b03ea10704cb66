"""The real-component test infrastructure works for real (checked with independent clients).

net-snmp's snmpget and mosquitto_pub are used on purpose: they share no code with
the box, so a pass here says the simulator, PKI and broker behave, not that two
of our own pieces agree with each other.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from support import INSTALL_MOSQUITTO, INSTALL_NET_SNMP, require
from support.broker import Broker
from support.pki import CertPair, Pki
from support.snmpsim import Simulator
from support.subscriber import Subscriber

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
PRT_MARKER_LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4.1.1"


def snmpget(address: str, community: str, oid: str) -> str:
    """The value of one OID as net-snmp prints it (-Oqv: value only)."""
    require("snmpget", INSTALL_NET_SNMP)
    done = subprocess.run(
        ["snmpget", "-v2c", "-c", community, "-t", "2", "-r", "1", "-Oqv", address, oid],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return done.stdout.strip().strip('"')


def mosquitto_pub(broker: Broker, client: CertPair, topic: str, payload: str,
                  cafile: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Publish once at QoS 1 over mutual TLS, as a box would."""
    require("mosquitto_pub", INSTALL_MOSQUITTO)
    return subprocess.run(
        ["mosquitto_pub", "-V", "mqttv5", "-q", "1", "-h", broker.host, "-p", str(broker.port),
         "--cafile", str(cafile or broker.ca_file), "--cert", str(client.cert), "--key", str(client.key),
         "-i", f"test-{uuid.uuid4().hex[:8]}", "-t", topic, "-m", payload],
        capture_output=True, text=True, timeout=30,
    )


def reading(box: str) -> str:
    return json.dumps({"v": 1, "id": uuid.uuid4().hex, "box": box})


# -- snmpsim ---------------------------------------------------------------------


def test_snmpget_reads_brother_sysdescr(printers: Simulator) -> None:
    assert snmpget(printers.address, "brother_hl5370dw", SYS_DESCR).startswith("Brother NC-6800h")


def test_changed_counter_is_served_on_the_next_get(tmp_path: Path) -> None:
    with Simulator.with_recordings(["brother_hl5370dw"], tmp_path / "printers") as sim:
        before = int(snmpget(sim.address, "brother_hl5370dw", PRT_MARKER_LIFE_COUNT))
        for after in (before + 250, before + 251):
            sim.set_values("brother_hl5370dw", {PRT_MARKER_LIFE_COUNT: after})
            assert int(snmpget(sim.address, "brother_hl5370dw", PRT_MARKER_LIFE_COUNT)) == after


def test_checked_in_recordings_cannot_be_changed(printers: Simulator) -> None:
    with pytest.raises(PermissionError):
        printers.set_values("brother_hl5370dw", {PRT_MARKER_LIFE_COUNT: 1})


# -- broker, PKI, ACL ------------------------------------------------------------


def test_box_may_publish_only_under_its_own_id(broker: Broker) -> None:
    box = broker.client_cert("MB-7F3A9C")
    with Subscriber(broker) as sub:
        # The denied one goes first: once the allowed one is in, the other had its chance.
        mosquitto_pub(broker, box, "meterbox/v1/MB-000001/readings", reading("MB-000001"))
        allowed = mosquitto_pub(broker, box, "meterbox/v1/MB-7F3A9C/readings", reading("MB-7F3A9C"))
        assert allowed.returncode == 0, allowed.stderr
        sub.wait_for(lambda ms: any(m.box == "MB-7F3A9C" for m in ms))
        assert [m.topic for m in sub.messages] == ["meterbox/v1/MB-7F3A9C/readings"]
        assert sub.messages[0].json["box"] == "MB-7F3A9C"
    assert "Denied PUBLISH" in broker.log()


@pytest.mark.parametrize("variant", ["other-ca", "expired"])
def test_broker_refuses_bad_client_certificate(broker: Broker, pki: Pki, variant: str) -> None:
    bad = pki.client("MB-7F3A9C", ca="other-ca") if variant == "other-ca" else pki.client("MB-7F3A9C", expired=True)
    refusals = broker.log().count("certificate verify failed")
    with Subscriber(broker) as sub:
        refused = mosquitto_pub(broker, bad, "meterbox/v1/MB-7F3A9C/readings", reading("MB-7F3A9C"))
        fence = mosquitto_pub(broker, broker.client_cert("MB-7F3A9C"), "meterbox/v1/MB-7F3A9C/status", "{}")
        assert fence.returncode == 0, fence.stderr
        sub.wait_for(lambda ms: any(m.kind == "status" for m in ms))
        assert refused.returncode != 0
        assert [m.kind for m in sub.messages] == ["status"]
    assert broker.log().count("certificate verify failed") > refusals


@pytest.mark.parametrize("server", ["server_wrong_name", "server_expired"])
def test_client_refuses_bad_server_certificate(pki: Pki, tmp_path: Path, server: str) -> None:
    require("mosquitto", INSTALL_MOSQUITTO)
    with Broker(pki, work_dir=tmp_path, server=getattr(pki, server)) as bad_broker:
        done = mosquitto_pub(bad_broker, pki.client("MB-7F3A9C"), "meterbox/v1/MB-7F3A9C/readings", "{}")
        assert done.returncode != 0
        assert "TLS error" in done.stderr
        assert "Received PUBLISH" not in bad_broker.log()


def test_session_and_queue_survive_broker_restart(pki: Pki, tmp_path: Path) -> None:
    require("mosquitto", INSTALL_MOSQUITTO)
    with Broker(pki, work_dir=tmp_path) as restartable, Subscriber(restartable) as sub:
        port = restartable.port
        restartable.stop()
        restartable.start()
        assert restartable.port == port
        sent = mosquitto_pub(restartable, restartable.client_cert("MB-7F3A9C"),
                             "meterbox/v1/MB-7F3A9C/readings", reading("MB-7F3A9C"))
        assert sent.returncode == 0, sent.stderr
        # Queued for the persistent session while the subscriber reconnects.
        sub.wait_for(lambda ms: len(ms) >= 1, timeout=15)


def test_box_publishes_over_websockets(pki: Pki, tmp_path: Path) -> None:
    require("mosquitto", INSTALL_MOSQUITTO)
    with Broker(pki, work_dir=tmp_path, websockets=True) as ws_broker, Subscriber(ws_broker) as sub:
        assert ws_broker.ws_port is not None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="MB-7F3A9C-ws", protocol=mqtt.MQTTv5,
                             transport="websockets")
        cert, key = ws_broker.client_cert("MB-7F3A9C")
        client.tls_set(ca_certs=str(ws_broker.ca_file), certfile=str(cert), keyfile=str(key))
        client.connect(ws_broker.host, ws_broker.ws_port)
        client.loop_start()
        try:
            client.publish("meterbox/v1/MB-7F3A9C/status", '{"v": 1}', qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        assert [m.json for m in sub.wait_for(lambda ms: len(ms) >= 1)] == [{"v": 1}]
