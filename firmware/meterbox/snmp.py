"""SNMP access: the only module that imports pysnmp.

Python's cost is per PDU (BER in pyasn1), so this module asks for few, full PDUs:
one GET for all scalars, one GETBULK walking several table columns side by side,
and no MIB look-ups (``lookupMib=False``). The engine lives as long as the daemon.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Union

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    Udp6TransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as _auth
from pyasn1.type import univ
from pysnmp.proto import errind, rfc1902, rfc1905

from meterbox.config import Credential
from meterbox.errors import PrinterUnreachable, SnmpAuthError, SnmpError

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


def parse_address(text: str, default_port: int = 161) -> tuple[str, int]:
    """Split "host", "host:port", "[v6]:port" or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def _convert(value: object) -> Value | None:
    """pysnmp value -> plain Python; None for noSuchObject/noSuchInstance/endOfMibView."""
    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(n) for n in value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value.asOctets())
    if isinstance(value, univ.Null):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class SnmpClient:
    """Reads printers. One per daemon: the engine and transports are reused between polls."""

    def __init__(self) -> None:
        self.engine = SnmpEngine()
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self.requests = 0  # PDUs sent, for benchmarks and `--explain`

    def close(self) -> None:
        """Release the UDP sockets."""
        self.engine.close_dispatcher()

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

    def _check(self, target: Target, indication: object, status: object, index: object) -> None:
        """Turn pysnmp's error triple into one clear MeterboxError."""
        cred = target.credential
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
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
            raise SnmpError(f"printer at {target.address}: SNMP error: {indication}")
        if status and int(status) not in (2,):  # 2 = noSuchName (v1), handled as missing values
            raise SnmpError(
                f"printer at {target.address}: the printer answered with error {status.prettyPrint()} "  # type: ignore[attr-defined]
                f"at variable {index}"
            )

    async def get(self, target: Target, oids: Iterable[str]) -> dict[str, Value]:
        """One GET for all OIDs; missing ones are left out of the result."""
        oids = list(oids)
        if not oids:
            return {}
        transport = await self._transport(target)
        self.requests += 1
        indication, status, index, binds = await get_cmd(
            self.engine, self._auth(target.credential), transport,
            ContextData(contextName=target.credential.context),
            *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False,
        )
        if status and int(status) == 2 and target.credential.version == "1" and len(oids) > 1:
            # SNMPv1 fails the whole PDU when one OID is missing: fall back to one at a time.
            result: dict[str, Value] = {}
            for oid in oids:
                result.update(await self.get(target, [oid]))
            return result
        self._check(target, indication, status, index)
        return {str(name): v for name, raw in binds if (v := _convert(raw)) is not None}

    async def walk(
        self, target: Target, roots: Iterable[str], max_repetitions: int = 16
    ) -> dict[str, dict[str, Value]]:
        """Walk several subtrees side by side; returns {root: {index suffix: value}}."""
        roots = list(roots)
        result: dict[str, dict[str, Value]] = {r: {} for r in roots}
        cursor = {r: r for r in roots}
        while cursor:
            active = list(cursor)
            binds = await self._next_batch(target, [cursor[r] for r in active], max_repetitions)
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
                if oid in result[root] or _oid_key(oid) <= _oid_key(cursor[root]):
                    del cursor[root]  # a broken agent that does not advance
                    continue
                result[root][oid[len(root) + 1:]] = value
                cursor[root] = oid
        return result

    async def _next_batch(self, target: Target, oids: list[str], max_repetitions: int) -> list[tuple[object, object]]:
        transport = await self._transport(target)
        auth = self._auth(target.credential)
        ctx = ContextData(contextName=target.credential.context)
        binds_in = [ObjectType(ObjectIdentity(o)) for o in oids]
        self.requests += 1
        if target.credential.version == "1":
            indication, status, index, binds = await next_cmd(
                self.engine, auth, transport, ctx, *binds_in, lookupMib=False)
            if status and int(status) == 2:
                return []  # v1 end of MIB
        else:
            indication, status, index, binds = await bulk_cmd(
                self.engine, auth, transport, ctx, 0, max_repetitions, *binds_in, lookupMib=False)
        self._check(target, indication, status, index)
        return [(b[0], b[1]) for b in binds]


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
