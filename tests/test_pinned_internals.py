"""The low-level pysnmp and paho API the firmware leans on is still there, shaped as it expects.

These are internals, not promised stable between releases (firmware/constraints.txt pins the
tested versions). When a raised pin moves one of them, this says which and where, instead of
the daemon failing on a printer in the field.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from pathlib import Path

import pytest

CONSTRAINTS = Path(__file__).resolve().parent.parent / "firmware" / "constraints.txt"


def pinned() -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


@pytest.mark.parametrize("package", ["pysnmp", "pyasn1", "paho-mqtt"])
def test_the_installed_version_is_the_pinned_one(package: str) -> None:
    assert metadata.version(package) == pinned()[package], (
        f"{package} {metadata.version(package)} is installed but firmware/constraints.txt pins "
        f"{pinned()[package]}: install with `pip install -c firmware/constraints.txt`, or raise the pin "
        "after this file's other tests pass")


def params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_pysnmp_command_generators_take_raw_varbinds() -> None:
    from pysnmp.entity.rfc3413 import cmdgen
    where = "pysnmp.entity.rfc3413.cmdgen"
    get = params(cmdgen.GetCommandGenerator.send_varbinds)
    bulk = params(cmdgen.BulkCommandGenerator.send_varbinds)
    assert get[:7] == ["self", "snmpEngine", "targetName", "contextEngineId", "contextName", "varBinds",
                       "cbFun"], f"{where}.GetCommandGenerator.send_varbinds changed: {get}; adapt printers/snmpv3.py send"
    assert bulk[:9] == ["self", "snmpEngine", "targetName", "contextEngineId", "contextName", "nonRepeaters",
                        "maxRepetitions", "varBinds", "cbFun"], \
        f"{where}.BulkCommandGenerator.send_varbinds changed: {bulk}; adapt printers/snmpv3.py send"


def test_pysnmp_target_configuration_and_message_api() -> None:
    from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
    from pysnmp.proto import api
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

    from meterbox.printers import datagrams

    assert params(LCD.configure)[:4] == ["snmpEngine", "authData", "transportTarget", "contextName"] or \
        params(LCD.configure)[:5] == ["self", "snmpEngine", "authData", "transportTarget", "contextName"], \
        f"LCD.configure changed: {params(LCD.configure)}; adapt printers/snmpv3.py send"
    for version in (api.SNMP_VERSION_1, api.SNMP_VERSION_2C):
        module = api.PROTOCOL_MODULES[version]
        for name in ("set_defaults", "set_request_id", "set_varbinds", "get_varbinds", "get_request_id",
                     "get_error_status", "get_error_index"):
            assert hasattr(module.apiPDU, name), f"pysnmp.proto.api apiPDU.{name} is gone; adapt printers/datagrams.py"
        for name in ("set_defaults", "set_community", "set_pdu", "get_pdu"):
            assert hasattr(module.apiMessage, name), f"pysnmp.proto.api apiMessage.{name} is gone; adapt datagrams.py"
    bulk = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].apiBulkPDU
    for name in ("set_non_repeaters", "set_max_repetitions"):
        assert hasattr(bulk, name), f"pysnmp.proto.api apiBulkPDU.{name} is gone; adapt printers/datagrams.py"
    assert callable(api.decodeMessageVersion), "pysnmp.proto.api.decodeMessageVersion is gone; adapt decode_reply"
    assert "msgGlobalData" in SNMPv3Message().keys()
    # datagrams.py keeps its own copy of RFC 3414's USM parameters (pysnmp's brings cryptography along)
    assert list(UsmSecurityParameters().keys()) == list(datagrams.UsmSecurityParameters().keys())


def test_polling_v1_and_v2c_printers_loads_neither_the_snmp_engine_nor_cryptography() -> None:
    """The box's RSS budget: pysnmp's engine and ciphers (about 12 MiB) are for SNMPv3 printers only."""
    import subprocess
    import sys
    code = ("import sys, meterbox.box.daemon, meterbox.printers.snmp as s\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(('cryptography', 'pysnmp.entity', 'pysnmp.hlapi')))\n"
            "print(' '.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the daemon imports {out} before any SNMPv3 printer is read"


def test_paho_socket_callbacks_exist() -> None:
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for name in ("on_socket_open", "on_socket_close", "on_socket_register_write", "on_socket_unregister_write"):
        assert hasattr(client, name), f"paho-mqtt Client.{name} is gone; adapt uplink/mqtt.py"
    for name in ("loop_read", "loop_write", "loop_misc", "socket"):
        assert callable(getattr(client, name)), f"paho-mqtt Client.{name} is gone; adapt uplink/mqtt.py"


def test_paho_dials_through_a_method_the_uplink_can_replace() -> None:
    """uplink/connection.py Client makes paho's TCP socket itself, so a pause can cut a set-up short."""
    import paho.mqtt.client as mqtt
    assert params(mqtt.Client._create_socket_connection) == ["self"], \
        "paho-mqtt Client._create_socket_connection changed; adapt uplink/connection.py Client"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for name in ("_host", "_port", "_connect_timeout", "_bind_address", "_bind_port"):
        assert hasattr(client, name), f"paho-mqtt Client.{name} is gone; adapt uplink/connection.py Client"
    assert callable(client._get_proxy), "paho-mqtt Client._get_proxy is gone; adapt uplink/connection.py Client"
