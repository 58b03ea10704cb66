"""SNMP access: the only module the rest of the firmware reads printers through.

Python's cost is per PDU (BER in pyasn1), so this module asks for few, full PDUs:
one GET for all scalars, one GETBULK walking several table columns side by side.
v1 and v2c go out as plain datagrams (datagrams.py); SNMPv3 goes through pysnmp's engine
(snmpv3.py), loaded the first time a printer is read with an SNMPv3 user.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Union, cast

from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

from meterbox.config import Credential
from meterbox.errors import MeterboxError, PrinterMisbehaves, PrinterUnreachable, SnmpAuthError, SnmpError
from meterbox.printers import datagrams
from meterbox.printers.columns import FULL, GET, Columns, Memory
from meterbox.printers.datagrams import BULK, NEXT, Datagrams

if TYPE_CHECKING:
    from meterbox.printers.snmpv3 import V3Engine

log = logging.getLogger(__name__)

#: A decoded SNMP value: numbers as int, strings as bytes (printers send binary and
#: odd charsets), OBJECT IDENTIFIERs as dotted str.
Value = Union[int, bytes, str]


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
    """Reads printers. One per daemon: its socket (and the SNMPv3 engine) are reused between polls.

    Every walk is bounded (MAX_ROWS per column, MAX_WALK_REQUESTS and a time limit), and an
    answer that is not SNMP (random bytes, an INTEGER of 2^100, a negative Counter32, a
    truncated message) is noted per address: a request that then times out says "malformed
    answer", not "no answer" (PrinterMisbehaves). pysnmp's own tracebacks never reach the log.
    """

    def __init__(self) -> None:
        self._datagrams = Datagrams(on_malformed=self._note_malformed)
        self._v3: V3Engine | None = None
        self._addresses: dict[str, str] = {}    # host as configured -> IP address, resolved once
        self.requests = 0  # PDUs sent, for benchmarks and `--explain`
        self._memory: dict[tuple[object, ...], Memory] = {}
        self._malformed: dict[tuple[str, int], tuple[float, str]] = {}   # address -> (when, what)

    def close(self) -> None:
        """Release the UDP sockets."""
        self._datagrams.close()
        if self._v3 is not None:
            self._v3.close()

    def _engine(self) -> V3Engine:
        if self._v3 is None:
            from meterbox.printers.snmpv3 import V3Engine   # loads pysnmp's engine and ciphers: v3 only
            self._v3 = V3Engine(on_malformed=self._note_malformed)
        return self._v3

    def _note_malformed(self, address: Any, what: str) -> None:
        try:
            key = (str(address[0]), int(address[1]))
        except (TypeError, ValueError, IndexError):
            return
        if key not in self._malformed and len(self._malformed) > 1024:
            self._malformed.clear()            # bounded: only the printers being polled matter
        self._malformed[key] = (time.monotonic(), what)
        log.debug("malformed SNMP answer from %s:%s ignored: %s", key[0], key[1], what)  # detail for --debug only

    async def _address(self, target: Target) -> str:
        """The target's IP address as the kernel writes a sender's (answers are matched on it); a host
        name is resolved once, to its IPv4 address where it has one (printers' agents often listen on
        IPv4 only), as the printer's address."""
        host = target.host
        if host not in self._addresses:
            try:
                self._addresses[host] = str(ipaddress.ip_address(host))
            except ValueError:
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(host, target.port, type=socket.SOCK_DGRAM)
                except OSError as err:
                    raise PrinterUnreachable(
                        f"printer at {target.address}: cannot resolve the address ({err.strerror or err}); "
                        "check the host name or use an IP address") from err
                infos.sort(key=lambda info: info[0] != socket.AF_INET)
                self._addresses[host] = str(infos[0][4][0])
        return self._addresses[host]

    def _no_answer(self, target: Target, sent: float, address: tuple[str, int]) -> MeterboxError:
        """A request that timed out: "malformed answer" if the address sent garbage meanwhile."""
        cred = target.credential
        noted = self._malformed.get(address)
        if noted and noted[0] >= sent:   # the same words every time: status is written on a change
            return PrinterMisbehaves(f"printer at {target.address}: answered with a malformed SNMP message; "
                                     "restart the printer or update its firmware")
        hint = (
            f"check that it is switched on and that SNMPv3 user {cred.user!r} exists"
            if cred.version == "3"
            else "check that it is switched on, that SNMP is enabled and that the community is right"
        )
        return PrinterUnreachable(
            f"printer at {target.address}: no answer within {target.timeout:g}s "
            f"({target.retries} {'retry' if target.retries == 1 else 'retries'}); {hint}"
        )

    def _v3_error(self, target: Target, indication: object, sent: float, address: tuple[str, int]) -> MeterboxError:
        """pysnmp's errorIndication as one clear MeterboxError."""
        from meterbox.printers.snmpv3 import auth_failed, timed_out
        if timed_out(indication):
            return self._no_answer(target, sent, address)
        if auth_failed(indication):
            return SnmpAuthError(
                f"printer at {target.address}: SNMPv3 user {target.credential.user!r} rejected ({indication}); "
                "check the user name, auth and priv keys and protocols under [[credentials]]"
            )
        return SnmpError(f"printer at {target.address}: SNMP error: {indication}; check the printer's "
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
        status, binds = await self._send(target, datagrams.GET, oids)
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
            status, binds = await self._send(target, NEXT, oids)
            return [] if status == 2 else binds  # noSuchName: v1's end of the MIB view
        status, binds = await self._send(target, BULK, oids, max_repetitions)
        if status == 1 and max_repetitions > 1:   # tooBig: fewer rows per answer
            return await self._next_batch(target, oids, max_repetitions // 2)
        return [] if status else binds

    async def _send(self, target: Target, kind: str, oids: list[str],
                    max_repetitions: int = 0) -> tuple[int, list[tuple[object, object]]]:
        """One PDU (datagrams.GET, NEXT or BULK); (error-status, varbinds) of its answer."""
        host = await self._address(target)
        cred = target.credential
        self.requests += 1
        sent = time.monotonic()
        if cred.version == "3":
            engine = self._engine()
            transport = await engine.transport(host, target.port, target.timeout, target.retries)
            indication, status, index, binds = await engine.send(transport, cred, kind, oids, max_repetitions)
            if indication:
                address = transport.transport_address
                raise self._v3_error(target, indication, sent, (str(address[0]), int(address[1])))
        else:
            request_id = self._datagrams.new_id()
            packet = datagrams.request(cred.version, cred.community.reveal(), kind, oids,
                                       request_id, max_repetitions)
            try:
                reply = await self._datagrams.exchange(host, target.port, request_id, packet, target.timeout,
                                                       tries=target.retries + 1)
            except OSError as err:   # no socket for its address family (IPv6 off on this box, say)
                raise PrinterUnreachable(f"printer at {target.address}: the box cannot send to it "
                                         f"({err.strerror or err}); check the box's network settings") from err
            if reply is None:
                raise self._no_answer(target, sent, (host, target.port))
            try:
                status, index, binds = datagrams.response(reply)
            except ValueError:      # an SNMPv3 message carrying this request's id: not an answer to it
                self._note_malformed((host, target.port), "an SNMPv3 message in answer to a v1/v2c request")
                raise self._no_answer(target, sent, (host, target.port)) from None
        if status not in (0, 1, 2):  # tooBig and noSuchName are for the caller to handle
            raise self._status_error(target, status, index)
        return status, list(binds)


ERROR_NAMES = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
               16: "authorizationError"}
MAX_ROWS = 128           # rows per column: the longest printer table seen has 28 (Sharp's counters)
MAX_WALK_REQUESTS = 40   # PDUs per walk
MAX_OID_ARCS = 128       # RFC 2578: an OID has at most 128 sub-identifiers
WALK_TIME = 4            # a walk may take this many times a request's timeout with all its retries


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

    A thousand mostly silent addresses: each probe is one message encoded with pysnmp's
    message API, sent from one socket per address family (datagrams.py), and its answer
    matched by request id (msgID for v3), from any port of the address probed.
    """

    def __init__(self) -> None:
        self._datagrams = Datagrams()

    @property
    def sent(self) -> int:
        """Datagrams sent, for benchmarks."""
        return self._datagrams.sent

    async def get(self, host: str, port: int, credential: Credential, oids: Iterable[str],
                  timeout: float) -> dict[str, Value] | None:
        """One v1/v2c GET: the values (missing ones left out), or None without an answer in time."""
        request_id = self._datagrams.new_id()
        packet = datagrams.request(credential.version, credential.community.reveal(), datagrams.GET, list(oids),
                                   request_id)
        try:
            reply = await self._datagrams.exchange(host, port, request_id, packet, timeout, any_port=True)
        except OSError:            # no socket for this address family: nothing to find there
            return None
        if reply is None:
            return None
        try:
            _, _, binds = datagrams.response(reply)
        except Exception:  # noqa: BLE001 -- an SNMPv3 message that happened to carry this id
            return None
        return {str(name): v for name, raw in binds if (v := _convert(raw)) is not None}

    async def v3_engine(self, host: str, port: int, timeout: float) -> bytes | None:
        """The engine id an SNMPv3 agent reports to an unauthenticated discovery; None if silent."""
        msg_id = self._datagrams.new_id()
        try:
            reply = await self._datagrams.exchange(host, port, msg_id, datagrams.v3_discovery(msg_id), timeout,
                                                   any_port=True)
        except OSError:
            return None
        if reply is None:
            return None
        try:
            return datagrams.engine_id(reply)
        except Exception:  # noqa: BLE001 -- not a report that decodes (a v1/v2c answer): no SNMPv3 agent
            return None

    def close(self) -> None:
        self._datagrams.close()
