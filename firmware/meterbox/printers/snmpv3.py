"""SNMPv3 through pysnmp's engine: loaded only when a printer is read with an SNMPv3 user.

USM needs state the engine keeps (each agent's engine id, boots and time, localised keys),
so v3 requests go through pysnmp's command generators, without hlapi's per-OID MIB
resolution. v1 and v2c never load this (datagrams.py): the engine and its ciphers cost
about 12 MiB of RSS.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable

# The box sends numeric OIDs only and never compiles MIBs. When pysmi happens to be
# installed (snmpsim needs it in the test environment) pysnmp imports it and with it
# jinja2 and requests: about 12 MB of RSS and 0.1 s of start-up. Keep it out.
sys.modules.setdefault("pysmi", None)  # type: ignore[arg-type]

from pysnmp.entity.rfc3413 import cmdgen  # noqa: E402
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, Udp6TransportTarget, UdpTransportTarget, UsmUserData  # noqa: E402
from pysnmp.hlapi.v3arch.asyncio import auth as _auth  # noqa: E402
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD  # noqa: E402
from pysnmp.proto import errind, rfc1902  # noqa: E402

from meterbox.config import Credential  # noqa: E402
from meterbox.printers.datagrams import BULK, GET, NEXT  # noqa: E402

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
AUTH_FAILURES = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationFailure,
    errind.UnsupportedSecurityLevel,
    errind.DecryptionError,
    errind.UnknownEngineID,
)
_GENERATORS = {GET: cmdgen.GetCommandGenerator(), NEXT: cmdgen.NextCommandGenerator(),
               BULK: cmdgen.BulkCommandGenerator()}
_NULL = rfc1902.Null("")
Answer = tuple[object, int, object, list[tuple[object, object]]]   # (errorIndication, status, index, varbinds)


class V3Engine:
    """pysnmp's engine for SNMPv3 printers; ON_MALFORMED(sender, what) hears of unparsable answers."""

    def __init__(self, on_malformed: Callable[[Any, str], None]) -> None:
        self.engine = SnmpEngine()
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self._on_malformed = on_malformed
        self._guard_receive()

    def close(self) -> None:
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
                self._on_malformed(address, f"{len(message)} bytes that are not SNMP: {type(err).__name__}")
                return b""
            if int(parse_errors.syntax) != before:
                self._on_malformed(address, f"{len(message)} bytes that do not decode as SNMP")
            return result

        dispatcher.receive_message = guarded

    async def transport(self, host: str, port: int, timeout: float, retries: int) -> UdpTransportTarget:
        """The engine's transport target for an address (resolved once); raises what pysnmp raises."""
        key = (host, port, timeout, retries)
        if key not in self._transports:
            cls = Udp6TransportTarget if ":" in host else UdpTransportTarget
            self._transports[key] = await cls.create((host, port), timeout=timeout, retries=retries)
        return self._transports[key]

    async def send(self, transport: UdpTransportTarget, cred: Credential, kind: str, oids: list[str],
                   max_repetitions: int = 0) -> Answer:
        """One PDU through pysnmp's command generators, skipping hlapi's per-OID MIB resolution."""
        addr_name, _ = LCD.configure(self.engine, _user(cred), transport, cred.context)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def done(engine: object, handle: object, indication: object, status: Any, index: object,
                 binds: list[tuple[object, object]], ctx: object) -> None:
            if not future.done():
                future.set_result((indication, int(status) if status else 0, index, binds))

        binds_in = [(rfc1902.ObjectName(o), _NULL) for o in oids]
        if kind == BULK:
            _GENERATORS[BULK].send_varbinds(self.engine, addr_name, None, cred.context, 0, max_repetitions,
                                            binds_in, done)
        else:
            _GENERATORS[kind].send_varbinds(self.engine, addr_name, None, cred.context, binds_in, done)
        return await future


def timed_out(indication: object) -> bool:
    return isinstance(indication, errind.RequestTimedOut)


def auth_failed(indication: object) -> bool:
    return isinstance(indication, AUTH_FAILURES)


def _user(cred: Credential) -> UsmUserData:
    auth = _AUTH[cred.auth_protocol] if cred.auth_key else _auth.usmNoAuthProtocol
    priv = _PRIV[cred.priv_protocol] if cred.priv_key else _auth.usmNoPrivProtocol
    return UsmUserData(
        cred.user,
        authKey=cred.auth_key.reveal() if cred.auth_key else None,
        privKey=cred.priv_key.reveal() if cred.priv_key else None,
        authProtocol=auth,
        privProtocol=priv,
    )
