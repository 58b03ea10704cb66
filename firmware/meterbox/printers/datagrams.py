"""SNMP v1/v2c as plain datagrams: one UDP socket per address family, answers matched by id.

pysnmp's engine keeps a row of MIB objects for every address it talks to (about 26 KB a
printer: 6 MiB for 250) and loading it brings the SNMPv3 security modules, cryptography
included (another 6 MiB and a tenth of a second of start-up). A v1 or v2c request needs
none of it: the message is BER-encoded with pysnmp's message API (pysnmp.proto.api), sent
from a socket shared by every printer, and its answer matched by request id and sender.
The engine is still used for SNMPv3 (snmpv3.py), where USM needs its state.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from typing import Any, Callable

from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import constraint, namedtype, univ
from pysnmp.proto import api, rfc1905
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

Address = tuple[str, int]
GET, NEXT, BULK = "get", "next", "bulk"


class UsmSecurityParameters(univ.Sequence):  # type: ignore[misc]
    """RFC 3414's msgSecurityParameters: what an SNMPv3 agent's discovery report carries.

    Defined here, not imported: pysnmp's own definition lives beside its ciphers, and
    importing it loads cryptography, which a box without SNMPv3 printers never needs.
    """

    componentType = namedtype.NamedTypes(  # noqa: N815 -- pyasn1's name
        namedtype.NamedType("msgAuthoritativeEngineId", univ.OctetString()),
        namedtype.NamedType("msgAuthoritativeEngineBoots",
                            univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(0, 2**31 - 1))),
        namedtype.NamedType("msgAuthoritativeEngineTime",
                            univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(0, 2**31 - 1))),
        namedtype.NamedType("msgUserName", univ.OctetString().subtype(subtypeSpec=constraint.ValueSizeConstraint(0, 32))),
        namedtype.NamedType("msgAuthenticationParameters", univ.OctetString()),
        namedtype.NamedType("msgPrivacyParameters", univ.OctetString()),
    )


def request(version: str, community: str, kind: str, oids: list[str], request_id: int,
            max_repetitions: int = 0) -> bytes:
    """One v1/v2c GET, GETNEXT or GETBULK message for OIDS, BER-encoded."""
    module = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if version == "1" else api.SNMP_VERSION_2C]
    if kind == BULK:
        pdu, pdu_api = module.GetBulkRequestPDU(), module.apiBulkPDU
        pdu_api.set_defaults(pdu)
        pdu_api.set_non_repeaters(pdu, 0)
        pdu_api.set_max_repetitions(pdu, max_repetitions)
    else:
        pdu = module.GetNextRequestPDU() if kind == NEXT else module.GetRequestPDU()
        pdu_api = module.apiPDU
        pdu_api.set_defaults(pdu)
    pdu_api.set_request_id(pdu, request_id)
    pdu_api.set_varbinds(pdu, [(module.ObjectIdentifier(o), module.Null("")) for o in oids])
    message = module.Message()
    module.apiMessage.set_defaults(message)
    module.apiMessage.set_community(message, community)
    module.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def response(message: Any) -> tuple[int, int, list[tuple[object, object]]]:
    """(error-status, error-index, varbinds) of a decoded v1/v2c answer."""
    if "version" not in message:
        raise ValueError("an SNMPv3 message where a v1/v2c answer was awaited")
    module = api.PROTOCOL_MODULES[int(message["version"])]
    pdu = module.apiMessage.get_pdu(message)
    return (int(module.apiPDU.get_error_status(pdu)), int(module.apiPDU.get_error_index(pdu)),
            list(module.apiPDU.get_varbinds(pdu)))


def v3_discovery(msg_id: int) -> bytes:
    """An unauthenticated, reportable SNMPv3 GET without varbinds: agents answer with a report."""
    message = SNMPv3Message()
    message["msgVersion"] = 3
    header = message["msgGlobalData"]
    header["msgID"] = msg_id
    header["msgMaxSize"] = 65507
    header["msgFlags"] = b"\x04"                      # reportable, noAuthNoPriv
    header["msgSecurityModel"] = 3                    # USM
    params = UsmSecurityParameters()
    for key in ("msgAuthoritativeEngineId", "msgUserName", "msgAuthenticationParameters",
                "msgPrivacyParameters"):
        params[key] = b""
    params["msgAuthoritativeEngineBoots"] = 0
    params["msgAuthoritativeEngineTime"] = 0
    message["msgSecurityParameters"] = encoder.encode(params)
    scoped = message["msgData"]["plaintext"]
    scoped["contextEngineId"] = b""
    scoped["contextName"] = b""
    pdu = rfc1905.GetRequestPDU()
    pdu["request-id"] = msg_id
    pdu["error-status"] = 0
    pdu["error-index"] = 0
    pdu["variable-bindings"].clear()
    scoped["data"]["get-request"] = pdu
    return bytes(encoder.encode(message))


def engine_id(reply: Any) -> bytes:
    """The authoritative engine id in an SNMPv3 agent's report."""
    params, _ = decoder.decode(bytes(reply["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    return bytes(params["msgAuthoritativeEngineId"])


_RESPONSES = {api.PROTOCOL_MODULES[api.SNMP_VERSION_1].GetResponsePDU.tagSet,
              api.PROTOCOL_MODULES[api.SNMP_VERSION_2C].ResponsePDU.tagSet}


def decode_reply(data: bytes) -> tuple[int, Any]:
    """(request id or msgID, decoded message) of an answer of any SNMP version.

    Raises ValueError for a v1/v2c message that is not an answer (a request sent back).
    """
    version = int(api.decodeMessageVersion(data))
    if version == 3:
        message, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        return int(message["msgGlobalData"]["msgID"]), message
    module = api.PROTOCOL_MODULES[version]
    message, _ = decoder.decode(data, asn1Spec=module.Message())
    pdu = module.apiMessage.get_pdu(message)
    if pdu.tagSet not in _RESPONSES:
        raise ValueError("not a response PDU")
    return int(module.apiPDU.get_request_id(pdu)), message


class Datagrams:
    """Sends requests and hands each answer to the request waiting for its id, from its address.

    ON_MALFORMED(sender, what) hears of datagrams that are not SNMP answers: a request that
    then times out can say "malformed answer" rather than "no answer".
    """

    def __init__(self, on_malformed: Callable[[Address, str], None] | None = None) -> None:
        self._transports: dict[int, asyncio.Future[asyncio.DatagramTransport]] = {}
        self._waiting: dict[int, tuple[str, int | None, asyncio.Future[Any]]] = {}
        self._on_malformed = on_malformed
        self.sent = 0                      # datagrams sent, for benchmarks

    def new_id(self) -> int:
        while (request_id := random.randint(1, 2**31 - 1)) in self._waiting:
            pass
        return request_id

    async def exchange(self, host: str, port: int, request_id: int, packet: bytes, timeout: float,
                       tries: int = 1, any_port: bool = False) -> Any:
        """Send PACKET up to TRIES times, TIMEOUT seconds apart; the decoded answer, or None.

        HOST must be an IP address. An answer to an earlier try counts (the same request id).
        ANY_PORT: accept the answer from another port of HOST (sweep probes).
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport = await self._transport(family)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (host, None if any_port else port, future)
        try:
            for _ in range(max(tries, 1)):
                try:
                    transport.sendto(packet, (host, port))
                    self.sent += 1
                    return await asyncio.wait_for(asyncio.shield(future), timeout)
                except asyncio.TimeoutError:
                    continue
                except OSError:
                    return None
            return None
        finally:
            self._waiting.pop(request_id, None)
            if not future.done():
                future.cancel()

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        """The socket for FAMILY, made once: the first requests of a poll round all wait for the same one."""
        if family not in self._transports:
            self._transports[family] = asyncio.ensure_future(self._open(family))
        try:
            return await asyncio.shield(self._transports[family])
        except OSError:
            self._transports.pop(family, None)    # no IPv6 on this box, say: the next request tries again
            raise

    async def _open(self, family: int) -> asyncio.DatagramTransport:
        local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=local, family=family)
        return transport

    def answered(self, data: bytes, sender: Address) -> None:
        """A datagram came in: hand it to the request waiting for its id (from that address)."""
        try:
            request_id, reply = decode_reply(data)
        except Exception as err:  # noqa: BLE001 -- whatever the network sends, pyasn1 may raise
            if self._on_malformed is not None:
                self._on_malformed(sender, f"{len(data)} bytes that are not an SNMP answer: {type(err).__name__}")
            return
        waiting = self._waiting.get(request_id)
        if waiting is None:
            return
        host, port, future = waiting
        if _same_host(sender[0], host) and port in (None, sender[1]) and not future.done():
            future.set_result(reply)

    def close(self) -> None:
        for opening in self._transports.values():
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                opening.result().close()
            else:
                opening.cancel()
        self._transports.clear()


def _same_host(sender: str, host: str) -> bool:
    """The kernel writes a sender's address in its short form; the config may not (0:0:0:0:0:0:0:1, upper case)."""
    if sender == host:
        return True
    try:
        return ipaddress.ip_address(sender) == ipaddress.ip_address(host)
    except ValueError:
        return False


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Datagrams) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner.answered(data, (str(addr[0]), int(addr[1])))
