"""SNMP access: the only module that imports pysnmp.

Python's cost is per PDU (BER in pyasn1), so this module asks for few, full PDUs:
one GET for all scalars, one GETBULK walking several table columns side by side,
and no MIB look-ups (``lookupMib=False``). The engine lives as long as the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import random
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable, Union, cast

# The box sends numeric OIDs only and never compiles MIBs. When pysmi happens to be
# installed (snmpsim needs it in the test environment) pysnmp imports it and with it
# jinja2 and requests: about 12 MB of RSS and 0.1 s of start-up. Keep it out.
sys.modules.setdefault("pysmi", None)  # type: ignore[arg-type]

from pysnmp.entity.rfc3413 import cmdgen  # noqa: E402
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    SnmpEngine,
    UdpTransportTarget,
    Udp6TransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.proto import api, errind, rfc1902, rfc1905
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from meterbox.config import Credential
from meterbox.errors import PrinterMisbehaves, PrinterUnreachable, SnmpAuthError, SnmpError
from meterbox.printers.columns import FULL, GET, Columns, Memory

log = logging.getLogger(__name__)

#: A decoded SNMP value: numbers as int, strings as bytes (printers send binary and
#: odd charsets), OBJECT IDENTIFIERs as dotted str.
Value = Union[int, bytes, str]

_AUTH = {
    "MD5": _auth.usmHMACMD5AuthProtocol,
    "SHA": _auth.usmHMACSHAAuthProtocol,
    "SHA224": _auth.usmHMAC128SHA224AuthProtocol,
    "SHA256": _auth.usmHMAC192SHA256AuthProtocol,
    "SHA384": _auth.usmHMAC256SHA384AuthProtocol,
    "SHA512": _auth.usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "DES": _auth.usmDESPrivProtocol,
    "AES": _auth.usmAesCfb128Protocol,
    "AES128": _auth.usmAesCfb128Protocol,
    "AES192": _auth.usmAesCfb192Protocol,
    "AES256": _auth.usmAesCfb256Protocol,
}
#: errorIndications that mean "the printer does not accept these credentials"
_AUTH_FAILURES = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationFailure,
    errind.UnsupportedSecurityLevel,
    errind.DecryptionError,
    errind.UnknownEngineID,
)


@dataclass(frozen=True)
class Target:
    """Where and how to reach one printer."""

    host: str
    port: int = 161
    credential: Credential = Credential()
    timeout: float = 2.0
    retries: int = 1

    @property
    def address(self) -> str:
        """host:port as a person would type it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Int32(int):
    """An integer read as a 32-bit SNMP type (INTEGER, Counter32, Gauge32, TimeTicks, Unsigned32)."""

    bits = 32


class Int64(int):
    """An integer read as a Counter64: it does not wrap at 2^32."""

    bits = 64


def _convert(value: object) -> Value | None:
    """pysnmp value -> plain Python; None for noSuchObject/noSuchInstance/endOfMibView.

    Integers keep the width of their SNMP type (Int32, Int64): only a 32-bit counter wraps at 2^32.
    """
    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(n) for n in value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value.asOctets())
    if isinstance(value, univ.Null):
        return None
    try:
        return Int64(cast(Any, value)) if isinstance(value, rfc1902.Counter64) else Int32(cast(Any, value))
    except (TypeError, ValueError):
        return None


class SnmpClient:
    """Reads printers. One per daemon: the engine and transports are reused between polls.

    Every walk is bounded (MAX_ROWS per column, MAX_WALK_REQUESTS and a time limit), and an
    answer that is not SNMP (random bytes, an INTEGER of 2^100, a negative Counter32, a
    truncated message) is noted per address: a request that then times out says "malformed
    answer", not "no answer" (PrinterMisbehaves). pysnmp's own tracebacks never reach the log.
    """

    def __init__(self) -> None:
        self.engine = SnmpEngine()
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self.requests = 0  # PDUs sent, for benchmarks and `--explain`
        self._memory: dict[tuple[object, ...], Memory] = {}
        self._malformed: dict[tuple[str, int], tuple[float, str]] = {}   # address -> (when, what)
        self._guard_receive()

    def close(self) -> None:
        """Release the UDP sockets."""
        self.engine.close_dispatcher()

    def _guard_receive(self) -> None:
        """Note answers pysnmp cannot parse, by sender; keep its exceptions out of asyncio's log.

        pysnmp counts an unparsable message in snmpInASNParseErrs and drops it (the request
        then times out); some garbage raises out of its decoder instead, and asyncio logged
        that with a 26-line traceback on every datagram.
        """
        dispatcher = self.engine.message_dispatcher
        receive = dispatcher.receive_message
        (parse_errors,) = self.engine.get_mib_builder().import_symbols("__SNMPv2-MIB", "snmpInASNParseErrs")

        def guarded(engine: Any, domain: Any, address: Any, message: bytes) -> Any:
            before = int(parse_errors.syntax)
            try:
                result = receive(engine, domain, address, message)
            except Exception as err:  # noqa: BLE001 -- anything the wire brings, pysnmp's decoder may raise
                self._note_malformed(address, f"{len(message)} bytes that are not SNMP: {type(err).__name__}")
                return b""
            if int(parse_errors.syntax) != before:
                self._note_malformed(address, f"{len(message)} bytes that do not decode as SNMP")
            return result

        dispatcher.receive_message = guarded

    def _note_malformed(self, address: Any, what: str) -> None:
        try:
            key = (str(address[0]), int(address[1]))
        except (TypeError, ValueError, IndexError):
            return
        if key not in self._malformed and len(self._malformed) > 1024:
            self._malformed.clear()            # bounded: only the printers being polled matter
        self._malformed[key] = (time.monotonic(), what)
        log.debug("malformed SNMP answer from %s:%s ignored: %s", key[0], key[1], what)  # detail for --debug only

    async def _transport(self, target: Target) -> UdpTransportTarget:
        key = (target.host, target.port, target.timeout, target.retries)
        if key not in self._transports:
            cls = Udp6TransportTarget if ":" in target.host else UdpTransportTarget
            try:
                self._transports[key] = await cls.create(
                    (target.host, target.port), timeout=target.timeout, retries=target.retries
                )
            except Exception as err:  # pysnmp wraps resolver failures in its own error
                raise PrinterUnreachable(
                    f"printer at {target.address}: cannot resolve the address ({err}); "
                    "check the host name or use an IP address"
                ) from err
        return self._transports[key]

    @staticmethod
    def _auth(cred: Credential) -> CommunityData | UsmUserData:
        if cred.version == "3":
            auth = _AUTH[cred.auth_protocol] if cred.auth_key else _auth.usmNoAuthProtocol
            priv = _PRIV[cred.priv_protocol] if cred.priv_key else _auth.usmNoPrivProtocol
            return UsmUserData(
                cred.user,
                authKey=cred.auth_key.reveal() if cred.auth_key else None,
                privKey=cred.priv_key.reveal() if cred.priv_key else None,
                authProtocol=auth,
                privProtocol=priv,
            )
        return CommunityData(cred.community.reveal(), mpModel=0 if cred.version == "1" else 1,
                             contextName=cred.context)

    def _check(self, target: Target, indication: object, sent: float, address: tuple[str, int]) -> None:
        """Turn pysnmp's errorIndication into one clear MeterboxError."""
        cred = target.credential
        if isinstance(indication, errind.RequestTimedOut):
            noted = self._malformed.get(address)
            if noted and noted[0] >= sent:   # the same words every time: status is written on a change
                raise PrinterMisbehaves(f"printer at {target.address}: answered with a malformed SNMP message; "
                                        "restart the printer or update its firmware")
            hint = (
                f"check that it is switched on and that SNMPv3 user {cred.user!r} exists"
                if cred.version == "3"
                else "check that it is switched on, that SNMP is enabled and that the community is right"
            )
            raise PrinterUnreachable(
                f"printer at {target.address}: no answer within {target.timeout:g}s "
                f"({target.retries} {'retry' if target.retries == 1 else 'retries'}); {hint}"
            )
        if isinstance(indication, _AUTH_FAILURES):
            raise SnmpAuthError(
                f"printer at {target.address}: SNMPv3 user {cred.user!r} rejected ({indication}); "
                "check the user name, auth and priv keys and protocols under [[credentials]]"
            )
        raise SnmpError(f"printer at {target.address}: SNMP error: {indication}; check the printer's "
                        "SNMP settings (version, community or v3 user) and that its agent is enabled")

    @staticmethod
    def _status_error(target: Target, status: int, index: object) -> SnmpError:
        return SnmpError(
            f"printer at {target.address}: the printer answered with SNMP error {ERROR_NAMES.get(status, status)} "
            f"at variable {index}; check that its SNMP access (read view) includes the Printer-MIB")

    async def get(self, target: Target, oids: Iterable[str]) -> dict[str, Value]:
        """One GET for all OIDs; missing ones are left out of the result."""
        oids = list(oids)
        if not oids:
            return {}
        status, binds = await self._send(target, _GET, oids)
        if status and len(oids) > 1 and (status == 1 or (status == 2 and target.credential.version == "1")):
            # tooBig: the answer does not fit the printer's message size; noSuchName (v1): one
            # missing OID fails the whole PDU. Either way, split and ask again.
            half = len(oids) // 2 if status == 1 else 1
            result: dict[str, Value] = {}
            for i in range(0, len(oids), half):
                result.update(await self.get(target, oids[i:i + half]))
            return result
        return {str(name): v for name, raw in binds if (v := _convert(raw)) is not None}

    async def read(self, target: Target, scalars: Iterable[str], roots: Iterable[str],
                   static: Iterable[str] = (), max_repetitions: int = 16) -> tuple[dict[str, Value], Columns]:
        """Scalars and table columns ({root: {index suffix: value}}) in as few PDUs as fit.

        In steady state that is one GET: the scalars with the changing cells of the rows the
        last walk found (columns.py says when to walk again, and what). STATIC roots are
        columns whose cells never change while their row exists.
        """
        scalars, roots = list(scalars), list(roots)
        key = (target.address, target.credential, tuple(roots))
        memory = self._memory.get(key)
        if memory is None:
            memory = self._memory[key] = Memory.of(roots, static)
        turn = memory.turn()
        if turn == GET:
            values = await self.get(target, scalars + memory.cells())
            columns = memory.from_get(values)
            if columns is not None:
                return {o: values[o] for o in scalars if o in values}, columns
            turn, scalars, got = FULL, [], {o: values[o] for o in scalars if o in values}
        else:
            got = {}
        walk_roots = roots if turn == FULL else memory.dynamic
        got_now, walked = await asyncio.gather(self.get(target, scalars), self._walk(target, walk_roots, max_repetitions))
        got.update(got_now)
        if turn == FULL:
            memory.learn(walked)
            return got, walked
        return got, memory.update(walked, await self.get(target, memory.new_rows(walked)))

    async def walk(self, target: Target, roots: Iterable[str], max_repetitions: int = 16,
                   static: Iterable[str] = ()) -> Columns:
        """Walk several subtrees side by side (rows remembered, as `read`); {root: {index suffix: value}}."""
        return (await self.read(target, [], roots, static, max_repetitions))[1]

    async def walk_once(self, target: Target, roots: Iterable[str], max_repetitions: int = 16) -> Columns:
        """Walk ROOTS in full now, remembering nothing."""
        return await self._walk(target, list(roots), max_repetitions)

    def remember(self, target: Target, roots: Iterable[str], static: Iterable[str], walked: Columns) -> None:
        """WALKED is what a full walk of ROOTS found: the next `read` of ROOTS starts from it."""
        roots = list(roots)
        memory = self._memory[(target.address, target.credential, tuple(roots))] = \
            Memory.of(roots, static, polls=1)
        memory.learn(walked)

    async def _walk(self, target: Target, roots: list[str], max_repetitions: int) -> Columns:
        """GETBULK (GETNEXT in v1) side by side, bounded in rows, requests and time."""
        result: Columns = {r: {} for r in roots}
        cursor = {r: r for r in roots}
        started, requests = time.monotonic(), 0
        limit = WALK_TIME * target.timeout * (target.retries + 1)
        while cursor:
            if requests >= MAX_WALK_REQUESTS:
                raise self._endless(target, f"its tables do not end ({requests} requests for one walk)")
            if time.monotonic() - started > limit:
                raise self._endless(target, f"its tables do not end (one walk took more than {limit:g}s)")
            active = list(cursor)
            binds = await self._next_batch(target, [cursor[r] for r in active], max_repetitions)
            requests += 1
            if not binds:
                break
            width = len(active)
            for i, (name, raw) in enumerate(binds):
                root = active[i % width]
                if root not in cursor:
                    continue
                oid = str(name)
                value = _convert(raw)
                if value is None or not oid.startswith(root + "."):
                    del cursor[root]  # left the subtree or end of MIB view
                    continue
                key = _oid_key(oid)
                if oid in result[root] or key <= _oid_key(cursor[root]):
                    del cursor[root]  # a broken agent that does not advance
                    continue
                if len(key) > MAX_OID_ARCS:
                    raise self._endless(target, f"its table {root} answers OIDs longer than SNMP allows")
                if len(result[root]) >= MAX_ROWS:
                    raise self._endless(target, f"its table {root} does not end (more than {MAX_ROWS} rows)")
                result[root][oid[len(root) + 1:]] = value
                cursor[root] = oid
        return result

    @staticmethod
    def _endless(target: Target, what: str) -> PrinterMisbehaves:
        return PrinterMisbehaves(f"printer at {target.address}: {what}; restart the printer or update its firmware")

    async def _next_batch(self, target: Target, oids: list[str], max_repetitions: int) -> list[tuple[object, object]]:
        if target.credential.version == "1":
            status, binds = await self._send(target, _NEXT, oids)
            return [] if status == 2 else binds  # noSuchName: v1's end of the MIB view
        status, binds = await self._send(target, _BULK, oids, max_repetitions)
        if status == 1 and max_repetitions > 1:   # tooBig: fewer rows per answer
            return await self._next_batch(target, oids, max_repetitions // 2)
        return [] if status else binds

    async def _send(self, target: Target, generator: Any, oids: list[str],
                    max_repetitions: int = 0) -> tuple[int, list[tuple[object, object]]]:
        """One PDU through pysnmp's command generators, skipping hlapi's per-OID MIB resolution.

        hlapi resolves every request OID through the MIB view even with lookupMib=False;
        that was a third of a poll's CPU. Raw (ObjectName, Null) pairs go straight to BER.
        """
        transport = await self._transport(target)
        cred = target.credential
        addr_name, _ = LCD.configure(self.engine, self._auth(cred), transport, cred.context)
        future: asyncio.Future[tuple[object, int, object, list[tuple[object, object]]]] = \
            asyncio.get_running_loop().create_future()

        def done(engine: object, handle: object, indication: object, status: Any, index: object,
                 binds: list[tuple[object, object]], ctx: object) -> None:
            if not future.done():
                future.set_result((indication, int(status) if status else 0, index, binds))

        binds_in = [(rfc1902.ObjectName(o), _NULL) for o in oids]
        self.requests += 1
        sent = time.monotonic()
        if generator is _BULK:
            _BULK.send_varbinds(self.engine, addr_name, None, cred.context, 0, max_repetitions,
                                binds_in, done)
        else:
            generator.send_varbinds(self.engine, addr_name, None, cred.context, binds_in, done)
        indication, status, index, binds = await future
        if indication:
            address = transport.transport_address
            self._check(target, indication, sent, (str(address[0]), int(address[1])))
        if status not in (0, 1, 2):  # tooBig and noSuchName are for the caller to handle
            raise self._status_error(target, status, index)
        return status, list(binds)


ERROR_NAMES = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
               16: "authorizationError"}
MAX_ROWS = 128           # rows per column: the longest printer table seen has 28 (Sharp's counters)
MAX_WALK_REQUESTS = 40   # PDUs per walk
MAX_OID_ARCS = 128       # RFC 2578: an OID has at most 128 sub-identifiers
WALK_TIME = 4            # a walk may take this many times a request's timeout with all its retries
_GET = cmdgen.GetCommandGenerator()
_NEXT = cmdgen.NextCommandGenerator()
_BULK = cmdgen.BulkCommandGenerator()
_NULL = rfc1902.Null("")


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


def text(value: Value | None) -> str | None:
    """A DisplayString as text: UTF-8 if valid, else Latin-1; trimmed of NULs and spaces."""
    if value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raw = value.split(b"\x00", 1)[0]
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    return decoded.strip() or None


# ---------------------------------------------------------------------------- sweep probes

class Prober:
    """Sweep probes as raw datagrams: one GET (v1/v2c) or one SNMPv3 engine discovery each.

    pysnmp's high-level API configures every new address into its engine's MIB tables
    and resolves every varbind through the MIB: about 8 ms of CPU per address, fine for
    polling printers, too slow for a thousand mostly silent addresses. A probe needs
    neither: its message is encoded with pysnmp's message API, sent from one socket per
    address family, and its answer matched by request id (msgID for v3).
    """

    def __init__(self) -> None:
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._waiting: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.sent = 0                      # datagrams sent, for benchmarks

    async def get(self, host: str, port: int, credential: Credential, oids: Iterable[str],
                  timeout: float) -> dict[str, Value] | None:
        """One v1/v2c GET: the values (missing ones left out), or None without an answer in time."""
        module = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if credential.version == "1" else api.SNMP_VERSION_2C]
        request_id = self._new_id()
        pdu = module.GetRequestPDU()
        module.apiPDU.set_defaults(pdu)
        module.apiPDU.set_request_id(pdu, request_id)
        module.apiPDU.set_varbinds(pdu, [(module.ObjectIdentifier(o), module.Null("")) for o in oids])
        message = module.Message()
        module.apiMessage.set_defaults(message)
        module.apiMessage.set_community(message, credential.community.reveal())
        module.apiMessage.set_pdu(message, pdu)
        reply = await self._exchange(host, port, request_id, encoder.encode(message), timeout)
        if reply is None:
            return None
        module = api.PROTOCOL_MODULES[int(reply["version"])]
        binds = module.apiPDU.get_varbinds(module.apiMessage.get_pdu(reply))
        return {str(name): v for name, raw in binds if (v := _convert(raw)) is not None}

    async def v3_engine(self, host: str, port: int, timeout: float) -> bytes | None:
        """The engine id an SNMPv3 agent reports to an unauthenticated discovery; None if silent."""
        msg_id = self._new_id()
        reply = await self._exchange(host, port, msg_id, _v3_discovery(msg_id), timeout)
        if reply is None:
            return None
        params, _ = decoder.decode(bytes(reply["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        return bytes(params["msgAuthoritativeEngineId"])

    def _new_id(self) -> int:
        while (request_id := random.randint(1, 2**31 - 1)) in self._waiting:
            pass
        return request_id

    async def _exchange(self, host: str, port: int, request_id: int, packet: bytes,
                        timeout: float) -> Any:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport = await self._transport(family)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (host, future)
        try:
            transport.sendto(packet, (host, port))
            self.sent += 1
            return await asyncio.wait_for(future, timeout)
        except (asyncio.TimeoutError, OSError):
            return None
        finally:
            self._waiting.pop(request_id, None)

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        if family not in self._transports:
            local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _ProbeProtocol(self), local_addr=local, family=family)
            self._transports[family] = transport
        return self._transports[family]

    def answered(self, data: bytes, sender: str) -> None:
        """An answer came in: hand it to the probe waiting for its id (from that address)."""
        try:
            request_id, reply = _decode_reply(data)
        except (PyAsn1Error, Exception) as err:  # noqa: BLE001 -- whatever the network sends
            log.debug("unreadable answer from %s ignored: %s", sender, type(err).__name__)
            return
        waiting = self._waiting.get(request_id)
        if waiting and waiting[0] == sender and not waiting[1].done():
            waiting[1].set_result(reply)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()


class _ProbeProtocol(asyncio.DatagramProtocol):
    def __init__(self, prober: Prober) -> None:
        self.prober = prober

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.prober.answered(data, str(addr[0]))


def _v3_discovery(msg_id: int) -> bytes:
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


def _decode_reply(data: bytes) -> tuple[int, Any]:
    """(request id or msgID, decoded message) of an answer of any SNMP version."""
    version = int(api.decodeMessageVersion(data))
    if version == 3:
        message, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        return int(message["msgGlobalData"]["msgID"]), message
    module = api.PROTOCOL_MODULES[version]
    message, _ = decoder.decode(data, asn1Spec=module.Message())
    return int(module.apiPDU.get_request_id(module.apiMessage.get_pdu(message))), message
