"""snmpsim serving real printer recordings over UDP, as a context manager.

One ``snmpsim-command-responder`` process serves every ``*.snmprec`` file of its
data directory on each of its endpoints; the SNMP v1/v2c community is the
recording's file stem (``brother_hl5370dw.snmprec`` -> ``-c brother_hl5370dw``).
For one printer per address, start one Simulator per address, each with its own
data directory (``Simulator.with_recordings``).

What snmpsim 1.2.2 re-reads, checked in its source (record/search/database.py,
commands/responder.py):

* The list of recordings is read once at start-up: a file added or removed later
  is not served until ``restart()``.
* The content of a recording is re-read when its mtime changes, but it compares
  whole seconds and keeps an OID -> offset index beside it that is only rebuilt
  when the file is not older than the index. ``set_values`` and
  ``replace_recording`` therefore write atomically and move the mtime forward by
  at least a second, so the very next request sees the new values.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pysnmp.proto import api
from pyasn1.codec.ber import decoder, encoder

from meterbox_demo.process import Service, free_tcp_port, free_udp_port, log_tail, spawn, terminate

__all__ = ["PRINTERS", "Simulator", "SimulatorError", "free_tcp_port", "free_udp_port", "responder_binary", "snmp_get"]

#: The real printer recordings of the repository (tests/printers, with their ATTRIBUTION).
PRINTERS = Path(__file__).resolve().parents[2] / "tests" / "printers"

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
_V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


class SimulatorError(RuntimeError):
    """snmpsim did not start or did not answer; the message carries its log."""


def responder_binary() -> Path:
    """The snmpsim responder installed in the running interpreter's environment."""
    return Path(sys.executable).parent / "snmpsim-command-responder"


def snmp_get(host: str, port: int, community: str, oid: str = SYS_DESCR, timeout: float = 0.5) -> object | None:
    """One SNMPv2c GET; the value (or error marker) of ``oid``, or None without an answer.

    Used as the readiness probe: a real request through snmpsim's full stack, with
    no engine to keep (pysnmp's message API plus one UDP socket).
    """
    pdu = _V2C.GetRequestPDU()
    _V2C.apiPDU.set_defaults(pdu)
    _V2C.apiPDU.set_varbinds(pdu, [(_V2C.ObjectIdentifier(oid), _V2C.Null(""))])
    msg = _V2C.Message()
    _V2C.apiMessage.set_defaults(msg)
    _V2C.apiMessage.set_community(msg, community)
    _V2C.apiMessage.set_pdu(msg, pdu)
    request_id = _V2C.apiPDU.get_request_id(pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(encoder.encode(msg), (host, port))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data, _ = sock.recvfrom(65535)
                reply, _ = decoder.decode(data, asn1Spec=_V2C.Message())
                reply_pdu = _V2C.apiMessage.get_pdu(reply)
                if _V2C.apiPDU.get_request_id(reply_pdu) == request_id:
                    return _V2C.apiPDU.get_varbinds(reply_pdu)[0][1]
        except (TimeoutError, ConnectionRefusedError):
            # ICMP port unreachable shows up as ECONNREFUSED on the next recv.
            return None
    return None


class Simulator(Service):
    """A running ``snmpsim-command-responder``; use it as a context manager.

    ``Simulator(data_dir=PRINTERS)`` serves all recordings on 127.0.0.1 and a free
    UDP port; ``endpoints=[("127.0.0.2", 16100), ...]`` serves them on each of the
    given addresses instead. ``.address`` is ``"HOST:PORT"`` of the first endpoint.
    """

    def __init__(
        self,
        data_dir: Path = PRINTERS,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        endpoints: Sequence[tuple[str, int]] | None = None,
        work_dir: Path | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.communities = sorted(p.stem for p in self.data_dir.glob("*.snmprec"))
        if not self.communities:
            raise SimulatorError(f"no *.snmprec recordings in {self.data_dir}")
        self.endpoints: list[tuple[str, int]] = (
            list(endpoints) if endpoints else [(host, port if port is not None else free_udp_port(host))]
        )
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="snmpsim-"))
        self.log_path = self.work_dir / "snmpsim.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # -- construction helpers -------------------------------------------------

    @classmethod
    def with_recordings(
        cls,
        names: Iterable[str],
        directory: Path,
        *,
        source: Path = PRINTERS,
        **kwargs: Any,
    ) -> Simulator:
        """A Simulator over a private, mutable copy of just the named recordings.

        ``directory`` (e.g. pytest's ``tmp_path / "printers"``) receives
        ``<name>.snmprec`` for each name, plus its SNMP-context siblings
        ``<name>@<context>.snmprec``. Tests may then change counters between polls
        with ``set_values`` without touching the checked-in recordings.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in names:
            original = source / f"{name}.snmprec"
            if not original.is_file():
                raise FileNotFoundError(f"no recording {original}")
            for path in [original, *source.glob(f"{_glob_escape(name)}@*.snmprec")]:
                shutil.copyfile(path, directory / path.name)
        return cls(directory, **kwargs)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Start the responder on the configured endpoints and wait until it answers."""
        if self.running:
            return
        argv: list[str | os.PathLike[str]] = [
            responder_binary(),
            f"--data-dir={self.data_dir}",
            # A cache of its own: indexes are keyed by path, and simulators running
            # side by side must not rebuild each other's.
            f"--cache-dir={self.work_dir / 'cache'}",
            "--log-level=error",
            *(f"--agent-udpv4-endpoint={h}:{p}" for h, p in self.endpoints),
        ]
        self._proc = spawn(argv, self.log_path, env={"SNMPSIM_ALLOW_ROOT": "true"})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the responder (its whole process group). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc)

    def restart(self) -> None:
        """Stop and start again on the same endpoints, e.g. after adding recordings."""
        self.stop()
        self.communities = sorted(p.stem for p in self.data_dir.glob("*.snmprec"))
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _wait_ready(self) -> None:
        """Poll with real GETs of sysDescr on every endpoint until each answers."""
        deadline = time.monotonic() + self.start_timeout
        community = self.communities[0]
        for host, port in self.endpoints:
            while snmp_get(host, port, community, timeout=0.25) is None:
                # Until it binds, the port answers at once with ICMP "unreachable":
                # back off a little instead of spinning.
                time.sleep(0.05)
                if not self.running:
                    raise SimulatorError(
                        f"snmpsim exited during start-up (endpoints {self.endpoints}); log:\n{log_tail(self.log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise SimulatorError(
                        f"snmpsim did not answer on {host}:{port} within {self.start_timeout} s; "
                        f"log:\n{log_tail(self.log_path)}"
                    )

    # -- where it listens -----------------------------------------------------

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        return self.endpoints[0][1]

    @property
    def address(self) -> str:
        """``"HOST:PORT"`` of the first endpoint, as the CLI and snmpget take it."""
        return f"{self.host}:{self.port}"

    @property
    def addresses(self) -> list[str]:
        return [f"{h}:{p}" for h, p in self.endpoints]

    # -- changing what the printers say ----------------------------------------

    def recording(self, name: str) -> Path:
        """Path of the recording served under community ``name``."""
        path = self.data_dir / f"{name}.snmprec"
        if not path.is_file():
            raise FileNotFoundError(f"{name!r} is not served by this simulator ({self.data_dir})")
        return path

    def set_values(self, name: str, values: Mapping[str, int | str | bytes]) -> None:
        """Change existing OIDs of one recording; served from the next request on.

        Keys are numeric OIDs (a leading dot is allowed). The SNMP type of each
        record is kept; ``bytes`` (and text that snmpsim would not serve verbatim)
        are written hex-encoded (``4x``). Adding OIDs is not supported: snmpsim
        walks the file in line order, so new lines would have to be sorted in.
        """
        path = self._mutable(name)
        wanted = {oid.lstrip("."): value for oid, value in values.items()}
        # snmpsim reads records as ISO-8859-1, which also round-trips any byte.
        lines = path.read_text(encoding="latin-1").splitlines(keepends=True)
        for i, line in enumerate(lines):
            oid, sep, rest = line.partition("|")
            if not sep or oid not in wanted:
                continue
            tag = rest.partition("|")[0]
            if ":" in tag:
                raise ValueError(f"{path.name}: {oid} uses a variation module ({tag}); edit it by hand")
            lines[i] = _record(oid, tag.rstrip("x"), wanted.pop(oid))
        if wanted:
            raise KeyError(f"OIDs not in {path.name}: {sorted(wanted)}")
        self._write(path, "".join(lines).encode("latin-1"))

    def replace_recording(self, name: str, content: Path | bytes | str) -> None:
        """Serve other content under community ``name`` (a file path or the text itself)."""
        path = self._mutable(name)
        data = content.read_bytes() if isinstance(content, Path) else content
        self._write(path, data.encode() if isinstance(data, str) else data)

    def _mutable(self, name: str) -> Path:
        path = self.recording(name)
        if self.data_dir == PRINTERS.resolve():
            raise PermissionError("tests/printers is checked in: use Simulator.with_recordings for a copy to change")
        return path

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Atomic replace with an mtime at least one whole second later (see module doc)."""
        old = int(path.stat().st_mtime)
        new = max(old, int(time.time())) + 1
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.utime(tmp, (new, new))
        os.replace(tmp, path)


def _record(oid: str, tag: str, value: int | str | bytes) -> str:
    """One snmprec line; text that would not survive snmpsim's parsing goes hex."""
    if isinstance(value, str) and not (value.isascii() and value.isprintable() and value == value.strip()):
        value = value.encode("utf-8")
    if isinstance(value, bytes):
        return f"{oid}|{tag}x|{value.hex()}\n"
    return f"{oid}|{tag}|{value}\n"


def _glob_escape(name: str) -> str:
    """Escape glob metacharacters in a recording name."""
    return re.sub(r"([*?\[])", r"[\1]", name)
