"""An office LAN in network namespaces, for discovery tests: built by the test, removed after.

Topology (names carry the test process id, so parallel runs never meet)::

    box namespace  mbt<pid>-box                lan namespace  mbt<pid>-lan
    +---------------------------+  veth pair  +-----------------------------------------+
    | mbt<pid>b   10.77.1.1/24  |-------------| mbt<pid>l   10.77.1.2 ... .254/24       |
    | lo                        |             | snmpsim: one process, one SNMP engine    |
    | meterbox runs here, with  |             |   and data directory per printer address |
    | `ip netns exec` (box_run) |             | snmpd: a non-printer; a v3-only printer  |
    +---------------------------+             | iptables: no ICMP port-unreachable out   |
                                              +-----------------------------------------+

Why this shape:

* The box namespace has one interface, the veth, so discovery with zero configuration
  sweeps exactly the test /24, and no packet of a test can reach a real network. The
  root namespace is never changed (no address, route or firewall rule is added there).
* The lan namespace owns every address of the /24, so ARP answers for all of them and
  each packet reaches a "host"; an address without an agent is silent because the lan's
  firewall drops the ICMP port-unreachable it would send back: exactly what the box sees
  of a host whose firewall drops SNMP (PITFALLS.md: on loopback, silence is not silent).
* The test process stays in the root namespace. It runs meterbox inside the box
  namespace (`ip netns exec`, see ``box_run``/``box_spawn``) and reads what it printed
  and the store it wrote (the file system is shared). Readiness checks run in a
  short-lived thread that enters a namespace (``call_in``): setns(2) changes only the
  calling thread, and sockets keep the namespace they were made in.

Cleanup: ``Lan`` is a context manager that stops its processes and deletes both
namespaces (which deletes the veth pair) even when the test fails; namespaces left by
a run that was killed outright are removed by the next run (``remove_stale``).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from . import PRINTERS
from .process import log_tail, spawn, terminate
from .snmpsim import responder_binary, snmp_get

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")
_OURS = re.compile(r"mbt(\d+)[a-z0-9]*-(box|lan)$")
SERIAL_OID = "1.3.6.1.2.1.43.5.1.1.17.1"       # prtGeneralSerialNumber.1
INSTALL_NETNS = "apt-get install iproute2 iptables, and run the tests as root (network namespaces)"
INSTALL_SNMPD = "apt-get install snmpd"


class NetnsError(RuntimeError):
    """A namespace, link or helper process could not be set up; the message says which."""


def _ip(*args: str) -> None:
    """Run `ip ARGS`; a failure names the command and what ip said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _pids(namespace: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def delete_namespace(namespace: str) -> None:
    """Kill whatever still runs in NAMESPACE, then delete it (its veth end goes with it)."""
    for pid in _pids(namespace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def remove_stale() -> None:
    """Delete namespaces of earlier test runs whose process no longer exists."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _OURS.match(name)
        if match and not Path(f"/proc/{match[1]}").exists():
            delete_namespace(name)


def call_in(namespace: str, fn: Callable[..., T], *args: Any) -> T:
    """FN(*ARGS) on a thread that has entered NAMESPACE; the caller's thread is never moved."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(_NETNS_DIR / namespace) as handle:
                if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace}")
            outcome["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"in {namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


class Lan:
    """The two namespaces and the veth pair between them; a context manager."""

    def __init__(self, work_dir: Path, prefix: str = "10.77.1", tag: str = "") -> None:
        self.work_dir = Path(work_dir)
        self.prefix = prefix
        ident = f"mbt{os.getpid()}{tag}"
        self.box, self.lan = f"{ident}-box", f"{ident}-lan"
        self.box_if, self.lan_if = f"{ident}b"[:15], f"{ident}l"[:15]
        self.box_address = self.address(1)
        self._procs: list[subprocess.Popen[bytes]] = []

    def address(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    @property
    def subnet(self) -> str:
        return f"{self.prefix}.0/24"

    def __enter__(self) -> Lan:
        remove_stale()
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()

    def _create(self) -> None:
        for namespace in (self.box, self.lan):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", self.box_if, "netns", self.box, "type", "veth",
            "peer", "name", self.lan_if, "netns", self.lan)
        _ip("-n", self.box, "addr", "add", f"{self.box_address}/24", "dev", self.box_if)
        batch = "".join(f"addr add {self.address(n)}/24 dev {self.lan_if}\n" for n in range(2, 255))
        done = subprocess.run(["ip", "-n", self.lan, "-batch", "-"], input=batch, text=True,
                              capture_output=True)
        if done.returncode:
            raise NetnsError(f"adding the lan addresses: {done.stderr.strip()}")
        for namespace, link in ((self.box, self.box_if), (self.lan, self.lan_if)):
            _ip("-n", namespace, "link", "set", link, "up")
        self._silence()

    def _silence(self) -> None:
        """Addresses without an agent drop SNMP without a word, like a firewalled host."""
        done = subprocess.run(["ip", "netns", "exec", self.lan, "iptables", "-A", "OUTPUT", "-p", "icmp",
                               "--icmp-type", "port-unreachable", "-j", "DROP"], capture_output=True, text=True)
        if done.returncode:
            raise NetnsError(f"iptables in {self.lan}: {done.stderr.strip()}")

    def remove(self) -> None:
        """Stop every process started here, then delete both namespaces. Safe to call twice."""
        while self._procs:
            terminate(self._procs.pop(), timeout=5)
        for namespace in (self.box, self.lan):
            if (_NETNS_DIR / namespace).exists():
                delete_namespace(namespace)

    # -- running things inside ---------------------------------------------------------

    def spawn(self, namespace: str, argv: Sequence[str | os.PathLike[str]], log_path: Path,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ARGV inside NAMESPACE; it is stopped by remove() at the latest."""
        proc = spawn(["ip", "netns", "exec", namespace, *argv], log_path, env=env)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc in self._procs:
            self._procs.remove(proc)
        terminate(proc, timeout=5)

    def box_command(self, *args: str) -> list[str]:
        """`meterbox ARGS` as run inside the box namespace."""
        return ["ip", "netns", "exec", self.box, sys.executable, "-m", "meterbox", *args]

    def box_run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `meterbox ARGS` in the box namespace and return what it printed."""
        return subprocess.run(self.box_command(*args), capture_output=True, text=True, timeout=timeout)

    def box_spawn(self, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start `meterbox ARGS` (the daemon) in the box namespace."""
        return self.spawn(self.box, self.box_command(*args)[4:], log_path)

    def add_interface_without_address(self, name: str) -> None:
        """A second, unconfigured network port on the box (up, no address)."""
        peer = f"{name}p"[:15]                 # no dummy driver everywhere: a veth, its peer in the lan
        _ip("link", "add", name, "netns", self.box, "type", "veth", "peer", "name", peer, "netns", self.lan)
        _ip("-n", self.lan, "link", "set", peer, "up")
        _ip("-n", self.box, "link", "set", name, "up")

    def wait_snmp(self, host: str, community: str, port: int = 161, timeout: float = 20) -> None:
        """Wait until HOST answers a v2c GET from the box side."""
        deadline = time.monotonic() + timeout
        while call_in(self.box, snmp_get, host, port, community, "1.3.6.1.2.1.1.2.0", 0.3) is None:
            if time.monotonic() > deadline:
                raise NetnsError(f"nothing answers SNMP at {host}:{port} after {timeout} s")
            time.sleep(0.1)


# -------------------------------------------------------------------------- printers

def recording(name: str, serial: str | None = None) -> str:
    """Text of tests/printers/NAME.snmprec; with SERIAL, prtGeneralSerialNumber set or added.

    Several real recordings have Printer-MIB supplies but no serial OID (LibreNMS did not
    record it); the tests give those a synthetic serial ("MBTEST-…") so each has one.
    """
    lines = (PRINTERS / f"{name}.snmprec").read_text(encoding="latin-1").splitlines(keepends=True)
    if serial is None:
        return "".join(lines)
    key = _oid_key(SERIAL_OID)
    lines = [line for line in lines if _oid_key(line.split("|", 1)[0]) != key]
    at = next((i for i, line in enumerate(lines) if _oid_key(line.split("|", 1)[0]) > key), len(lines))
    lines.insert(at, f"{SERIAL_OID}|4|{serial}\n")
    return "".join(lines)


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip().strip(".").split(".") if p.isdigit())


def sys_object_id(text: str) -> str:
    """sysObjectID.0 of a recording's text."""
    for line in text.splitlines():
        oid, _, rest = line.partition("|")
        if oid.strip(".") == "1.3.6.1.2.1.1.2.0":
            return rest.split("|", 1)[1].strip(".")
    raise KeyError("no sysObjectID in the recording")


class Printers:
    """One snmpsim process in the lan namespace serving one recording per address.

    snmpsim serves every recording of a data directory on each endpoint of an SNMP
    engine (PITFALLS.md), but it runs several engines in one process, each with its own
    endpoints and data directory (`--v3-engine-id` blocks): one process, one printer per
    address. The recording is named after COMMUNITY, the community the box must use.
    """

    def __init__(self, lan: Lan, work_dir: Path, printers: Mapping[str, str],
                 community: str = "public", start_timeout: float = 30) -> None:
        self.lan = lan
        self.work_dir = Path(work_dir)
        self.printers = dict(printers)      # endpoint "host" or "host:port" -> snmprec text
        self.community = community
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.work_dir / "snmpsim.log"

    def _argv(self) -> list[str]:
        argv = [str(responder_binary()), f"--cache-dir={self.work_dir / 'cache'}", "--log-level=error"]
        for n, (endpoint, text) in enumerate(self.printers.items()):
            data = self.work_dir / f"data{n}"
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            (data / f"{self.community}.snmprec").write_text(text, encoding="latin-1")
            port = "" if ":" in endpoint else ":161"
            argv += ["--v3-engine-id=auto", f"--data-dir={data}", f"--agent-udpv4-endpoint={endpoint}{port}"]
        return argv

    def __enter__(self) -> Printers:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.proc = self.lan.spawn(self.lan.lan, self._argv(), self.log_path, env={"SNMPSIM_ALLOW_ROOT": "true"})
        try:
            for endpoint in self.printers:
                if not endpoint.startswith("127."):
                    self._wait(endpoint)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait(self, endpoint: str) -> None:
        try:
            self.lan.wait_snmp(endpoint.split(":")[0], self.community, timeout=self.start_timeout)
        except NetnsError as err:
            raise NetnsError(f"snmpsim: {err}; log:\n{log_tail(self.log_path)}") from None

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.lan.stop(self.proc)
            self.proc = None


class Snmpd:
    """net-snmp's snmpd in the lan namespace, from the configuration text given."""

    def __init__(self, lan: Lan, work_dir: Path, conf: str, start_timeout: float = 15) -> None:
        self.lan = lan
        self.work_dir = Path(work_dir)
        self.conf = conf
        self.start_timeout = start_timeout
        self.log_path = self.work_dir / "snmpd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Snmpd:
        persist = self.work_dir / "persist"            # never /var/lib/snmp: createUser writes there
        persist.mkdir(parents=True, exist_ok=True)
        conf = self.work_dir / "snmpd.conf"
        conf.write_text(self.conf)
        argv = ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(self.work_dir / "snmpd.pid")]
        self.proc = self.lan.spawn(self.lan.lan, argv, self.log_path,
                                   env={"SNMP_PERSISTENT_DIR": str(persist), "MIBS": ""})
        deadline = time.monotonic() + self.start_timeout
        while "NET-SNMP version" not in (self.log_path.read_text(errors="replace") if self.log_path.exists() else ""):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise NetnsError(f"snmpd did not start; log:\n{log_tail(self.log_path)}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.lan.stop(self.proc)
            self.proc = None


def non_printer_conf(address: str, community: str = "public") -> str:
    """A Linux host's snmpd: system and Host Resources MIBs, no Printer-MIB, no printer row."""
    return (f"agentAddress udp:{address}:161\n"
            f"rocommunity {community} default\n"
            "sysDescr Linux file server (meterbox test: not a printer)\n")


def v3_printer_conf(address: str, user: str, auth_key: str, priv_key: str, backend: str,
                    sys_oid: str, backend_community: str = "public") -> str:
    """An SNMPv3-only printer: snmpd answers user USER (SHA/AES, authPriv) and proxies the
    Printer-MIB to a recording served by snmpsim at BACKEND, inside the lan namespace."""
    return (f"agentAddress udp:{address}:161\n"
            f'createUser {user} SHA "{auth_key}" AES "{priv_key}"\n'
            f"rouser {user} priv\n"
            f"sysObjectID {sys_oid}\n"
            f"proxy -v 2c -c {backend_community} {backend} .1.3.6.1.2.1.43\n")
