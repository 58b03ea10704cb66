"""A hostile SNMP agent: a small asyncio UDP responder that answers with raw, hand-built BER.

snmpsim serves what real printers recorded; this serves what broken and hostile ones send:
tables that never end, wrong types, huge and negative numbers, OIDs that never advance or
grow without end, 60 KB values, random bytes, control characters, addresses as serials.
Requests are decoded with pysnmp's message API (they come from our own client); answers are
encoded by hand, so they can be anything, including what no SNMP library would encode.

    with HostileAgent("endless") as agent:
        run_cli("poll", agent.address)

Run one by hand: ``python -m support.hostile MODE [PORT]`` (from tests/).
"""

from __future__ import annotations

import asyncio
import bisect
import random
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyasn1.codec.ber import decoder
from pysnmp.proto import api

from .process import Service, free_udp_port

__all__ = ["HostileAgent", "MODES"]

# -- BER by hand ---------------------------------------------------------------------------

INTEGER, OCTETS, NULL, OID, IPADDR, COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = \
    0x02, 0x04, 0x05, 0x06, 0x40, 0x41, 0x42, 0x43, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB = 0x80, 0x81, 0x82
Value = tuple[int, Any]          # (BER tag, Python value); for an exception tag the value is ignored


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def integer(n: int, tag: int = INTEGER) -> bytes:
    """Any integer, in any integer tag: 2^100 as an INTEGER and -5 as a Counter32 alike."""
    size = ((n if n >= 0 else ~n).bit_length() + 8) // 8
    return tlv(tag, n.to_bytes(size, "big", signed=True))


def oid(text: str) -> bytes:
    arcs = [int(a) for a in text.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return tlv(OID, bytes(body))


def value(v: Value) -> bytes:
    tag, x = v
    if tag in (INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
        return integer(x, tag)
    if tag in (OCTETS, IPADDR):
        return tlv(tag, x if isinstance(x, bytes) else str(x).encode("utf-8"))
    if tag == OID:
        return oid(x)
    return tlv(tag, b"")          # NULL, noSuchObject, noSuchInstance, endOfMibView


def response(version: int, community: bytes, request_id: int, binds: list[tuple[str, Value]],
             status: int = 0, index: int = 0) -> bytes:
    varbinds = b"".join(tlv(0x30, oid(o) + value(v)) for o, v in binds)
    pdu = tlv(0xA2, integer(request_id) + integer(status) + integer(index) + tlv(0x30, varbinds))
    return tlv(0x30, integer(version) + tlv(OCTETS, community) + pdu)


# -- a small, sane printer -------------------------------------------------------------------

SYS_DESCR, SYS_OID = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"
SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"
HR_TYPE, HR_DESCR = "1.3.6.1.2.1.25.3.2.1.2.1", "1.3.6.1.2.1.25.3.2.1.3.1"
LIFE = "1.3.6.1.2.1.43.10.2.1.4.1.1"
HP_TOTAL = "1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.5.0"       # hp.toml: impressions.total
COLUMNS = ("1.3.6.1.2.1.25.3.2.1", "1.3.6.1.2.1.43.10.2.1", "1.3.6.1.2.1.43.11.1.1", "1.3.6.1.2.1.43.12.1.1")
LONG_SERIAL = "HOSTILE-" + "X" * 192                      # 200 characters: the contract allows 64


def printer(serial: str = "HOSTILE0001") -> dict[str, Value]:
    return {
        SYS_DESCR: (OCTETS, "Hostile LaserJet 9000"),
        SYS_OID: (OID, "1.3.6.1.4.1.99999.1"),
        "1.3.6.1.2.1.1.5.0": (OCTETS, "prn-hostile"),
        HR_TYPE: (OID, "1.3.6.1.2.1.25.3.1.5"),
        HR_DESCR: (OCTETS, "Hostile LaserJet 9000"),
        SERIAL: (OCTETS, serial),
        "1.3.6.1.2.1.43.10.2.1.3.1.1": (INTEGER, 7),          # prtMarkerCounterUnit: impressions
        LIFE: (COUNTER32, 12345),
        "1.3.6.1.2.1.43.11.1.1.3.1.1": (INTEGER, 1),
        "1.3.6.1.2.1.43.11.1.1.4.1.1": (INTEGER, 3),
        "1.3.6.1.2.1.43.11.1.1.5.1.1": (INTEGER, 3),
        "1.3.6.1.2.1.43.11.1.1.6.1.1": (OCTETS, "Black Toner"),
        "1.3.6.1.2.1.43.11.1.1.7.1.1": (INTEGER, 19),
        "1.3.6.1.2.1.43.11.1.1.8.1.1": (INTEGER, 100),
        "1.3.6.1.2.1.43.11.1.1.9.1.1": (INTEGER, 40),
        "1.3.6.1.2.1.43.12.1.1.4.1.1": (OCTETS, "black"),
    }


def _with(**changes: Value) -> Callable[[str], dict[str, Value]]:
    names = {"serial": SERIAL, "descr": SYS_DESCR, "sys_oid": SYS_OID, "hr_descr": HR_DESCR, "life": LIFE,
             "hr_type": HR_TYPE, "level": "1.3.6.1.2.1.43.11.1.1.9.1.1", "hp_total": HP_TOTAL}
    return lambda serial: {**printer(serial), **{names[k]: v for k, v in changes.items()}}


HP = (OID, "1.3.6.1.4.1.11.2.3.9.1")
#: mode -> the MIB it serves (the endless, repeating, growing and random modes change the answers instead)
#: (each agent's printer has a serial of its own, from its mode, unless the mode is about the serial)
MIBS: dict[str, Callable[[str], dict[str, Value]]] = {
    "normal": printer,
    "wrong-types": _with(serial=(INTEGER, 42), descr=(COUNTER32, 7), sys_oid=(OCTETS, "1.3.6.1.4.1.11"),
                         life=(OCTETS, "lots"), level=(OID, "1.3.6.1.2.1.1"), hr_type=(OCTETS, "printer")),
    "null": lambda serial: {o: (NULL, None) for o in printer(serial)},
    "huge-int": _with(life=(INTEGER, 2 ** 100)),
    "negative-counter32": _with(life=(COUNTER32, -5)),
    "counter32-2^40": _with(life=(COUNTER32, 2 ** 40)),
    "counter64-max": _with(life=(COUNTER64, 2 ** 64 - 1)),
    "big-value": _with(descr=(OCTETS, "A" * 60_000)),
    "control-chars": _with(serial=(OCTETS, "HOST\x1b[31mILE\x07\x7f01"), descr=(OCTETS, "Laser\x1b]0;pwned\x07 9000"),
                           hr_descr=(OCTETS, "Hostile\x1b[2J Laser\x08\x7f 9000\r\n")),
    "ip-serial": _with(serial=(OCTETS, "192.168.1.20")),
    "fqdn-serial": _with(serial=(OCTETS, "prn7.office.example.com")),
    "binary-serial": _with(serial=(OCTETS, b"\x00\xff\xfe\x01AB\x80")),
    "long-serial": _with(serial=(OCTETS, LONG_SERIAL)),
    "long-model": _with(hr_descr=(OCTETS, "Hostile LaserJet " + "9" * 300)),
    "hp-superscript": _with(sys_oid=HP, hp_total=(OCTETS, "\u00b2")),        # "²".isdigit() is True
    "hp-5000-digits": _with(sys_oid=HP, hp_total=(OCTETS, "7" * 5000)),      # int() refuses > 4300 digits
}
#: modes that change how the agent answers, over the normal printer
BEHAVIOURS = ("endless", "repeat", "backwards", "growing-oids", "nosuch", "random", "truncated")
MODES = tuple(MIBS) + BEHAVIOURS


def _key(text: str) -> tuple[int, ...]:
    return tuple(int(a) for a in text.split("."))


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, owner: HostileAgent) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        mib = MIBS.get(owner.mode, printer)("HOSTILE-" + re.sub(r"[^A-Z0-9]", "", owner.mode.upper()))
        self.oids = sorted(mib, key=_key)
        self.keys = [_key(o) for o in self.oids]
        self.mib = mib
        self.rng = random.Random(8)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner.requests += 1
        assert self.transport is not None
        if self.owner.mode == "random":
            self.transport.sendto(self.rng.randbytes(self.rng.randint(1, 300)), addr)
            return
        try:
            version = int(api.decodeMessageVersion(data))
            module = api.PROTOCOL_MODULES[version]
            message, _ = decoder.decode(data, asn1Spec=module.Message())
        except Exception:  # not from our client: ignore
            return
        pdu = module.apiMessage.get_pdu(message)
        request_id = int(module.apiPDU.get_request_id(pdu))
        community = bytes(module.apiMessage.get_community(message))
        asked = [str(name) for name, _ in module.apiPDU.get_varbinds(pdu)]
        tag_id = int(pdu.tagSet[-1].tagId)
        if tag_id == 0:                                    # GetRequest
            binds = [(o, self.get(o)) for o in asked]
        elif tag_id == 1:                                  # GetNextRequest
            binds = [self.next(o) for o in asked]
        else:                                              # GetBulkRequest
            non_rep = int(pdu["non-repeaters"])
            reps = max(int(pdu["max-repetitions"]), 1)
            binds = [self.next(o) for o in asked[:non_rep]]
            cursors = asked[non_rep:]
            for _ in range(reps):
                row = [self.next(o) for o in cursors]
                binds += row
                cursors = [o for o, _ in row]
        packet = response(version, community, request_id, binds)
        if self.owner.mode == "truncated":                 # a message that claims 100 KB and brings 1 KB
            packet = bytes([0x30, 0x83, 0x01, 0x86, 0xA0]) + packet[2:][:1000]
        self.transport.sendto(packet, addr)

    def get(self, name: str) -> Value:
        if self.owner.mode == "nosuch":
            return (NO_SUCH_OBJECT, None)
        return self.mib.get(name, (NO_SUCH_INSTANCE, None))

    def next(self, name: str) -> tuple[str, Value]:
        mode = self.owner.mode
        if mode == "nosuch":
            return name, (END_OF_MIB, None)
        if mode == "repeat":
            return name, (INTEGER, 1)
        if mode == "growing-oids":
            return name + ".1", (INTEGER, 1)
        column = next((c for c in COLUMNS if name == c or name.startswith(c + ".")), None)
        if mode == "backwards" and column:
            return column + ".1", (INTEGER, 1)
        if mode == "endless" and column and name.count(".") > column.count(".") + 1:
            stem, last = name.rsplit(".", 1)               # rows 1, 2, 3, ... for ever, inside the column
            return f"{stem}.{int(last) + 1}", (COUNTER32, int(last) + 1)
        if mode == "endless" and column and name != column:
            return name + ".1.1", (COUNTER32, 1)
        i = bisect.bisect_right(self.keys, _key(name))
        if i >= len(self.oids):
            return name, (END_OF_MIB, None)
        return self.oids[i], self.mib[self.oids[i]]


class HostileAgent(Service):
    """One hostile agent on 127.0.0.1 (any community), in a thread of this process."""

    def __init__(self, mode: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.host = host
        self.port = port or free_udp_port(host)
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"hostile {self.mode}", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError(f"hostile agent {self.mode} did not start on {self.address}")

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(
            lambda: _Agent(self), local_addr=(self.host, self.port)))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            transport.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop = self._thread = None


def main(argv: list[str]) -> int:
    mode, port = argv[0], int(argv[1]) if len(argv) > 1 else None
    with HostileAgent(mode, port=port) as agent:
        print(f"hostile agent {mode!r} on {agent.address}; Ctrl-C stops it", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
