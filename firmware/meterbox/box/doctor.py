"""`meterbox doctor`: check what the box needs to store and forward, and say what to do about each.

Checks, each one line: the store (opens, integrity_check, writable, free space, size against
[store] max_size, backlog, damaged files moved aside), the certificates (present, readable,
not expired, the key matches), the clock (synchronised?), and the broker (TCP and TLS
handshake on each configured way, through the proxy if there is one; not while paused).
`--recover FILE` (meterbox.outbox.recover) puts the unsent readings a damaged store still holds
back into the outbox.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import ssl
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meterbox.outbox.clock import system_clock
from meterbox.config import Config

OK, WARN, FAIL = "ok", "WARN", "FAIL"
EXPIRY_WARNING = 30 * 86400  # renew client certificates this long before they expire
MIN_FREE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    level: str   # ok, WARN or FAIL
    topic: str   # store, certificates, clock, broker
    text: str    # what was found, and what to do

    def __str__(self) -> str:
        return f"{self.level:<4}  {self.topic:<12} {self.text}"


def run(cfg: Config) -> list[Finding]:
    """Every check, in the order a technician would fix things."""
    findings = list(check_store(cfg))
    findings += check_certificates(cfg)
    findings += check_files(cfg)
    findings += check_clock()
    findings += check_broker(cfg)
    return findings


# ---------------------------------------------------------------------------- store

def check_store(cfg: Config) -> Iterator[Finding]:
    path = cfg.state_dir / "meterbox.db"
    for aside in sorted(cfg.state_dir.glob("meterbox.db.corrupt-*")):
        if not aside.name.endswith(("-wal", "-shm")):
            yield Finding(WARN, "store", f"a damaged store was moved aside to {aside}; send what it still holds "
                                         f"with `meterbox doctor --recover {aside}`, then delete it")
    if not cfg.state_dir.is_dir():
        yield Finding(FAIL, "store", f"the state directory {cfg.state_dir} does not exist; create it "
                                     "(the package makes it) or fix box.state_dir in the config")
        return
    fs = os.statvfs(cfg.state_dir)
    read_only = bool(fs.f_flag & os.ST_RDONLY)
    if read_only:
        yield Finding(FAIL, "store", f"{cfg.state_dir} is on a read-only file system: the store can be read but not "
                                     "written, so readings are kept in memory only and lost at a power cut. A worn "
                                     "SD card turns read-only: copy the state directory off it (`cp -a`), "
                                     "replace the card and put the copy back")
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE and not read_only:
        yield Finding(FAIL, "store", f"only {free / 1e6:.1f} MB free on {cfg.state_dir}; free space "
                                     "(`df -h`, old logs under /var/log) or lower [store] max_size")
    if not path.exists():
        yield Finding(WARN, "store", f"{path} does not exist yet; it is made when the service first runs")
        return
    try:
        result, backlog, held, used = _examine(path, read_only)
    except sqlite3.DatabaseError as err:
        from meterbox.outbox.failures import StoreCorrupt, store_error

        problem = store_error(path, err, "read")
        if isinstance(problem, StoreCorrupt):
            yield Finding(FAIL, "store", f"{path} cannot be read ({err}): it is damaged; restart the service, "
                                         "which moves it aside and starts a new store, then run "
                                         "`meterbox doctor --recover <the moved file>`")
        else:
            yield Finding(FAIL, "store", str(problem))
        return
    if result != ["ok"]:
        yield Finding(FAIL, "store", f"{path} failed its integrity check ({'; '.join(result)}): restart the "
                                     "service (it moves a damaged store aside), then `meterbox doctor --recover`")
        return
    yield Finding(OK, "store", f"{path}: intact; {used / 1e6:.1f} MB of {cfg.store.max_bytes / 1e6:.0f} MB; "
                               f"{backlog} messages waiting to be sent" + (f" ({held} wait for the clock)" if held else ""))
    if not read_only and (not os.access(path, os.W_OK) or not os.access(cfg.state_dir, os.W_OK)):
        yield Finding(FAIL, "store", f"{path} is not writable by this user; the service runs as the meterbox "
                                     "user: `chown -R meterbox: " + str(cfg.state_dir) + "`")


def _examine(path: Path, read_only: bool) -> tuple[list[str], int, int, int]:
    """(integrity check, backlog, held, bytes used), read-only.

    On a read-only file system SQLite cannot make the -shm file WAL needs; then the file is read
    as immutable (without the commits still in a -wal file, if one was left).
    """
    try:
        return _examine_with(f"file:{path}?mode=ro")
    except sqlite3.OperationalError:
        if not read_only:
            raise
        return _examine_with(f"file:{path}?mode=ro&immutable=1")


def _examine_with(uri: str) -> tuple[list[str], int, int, int]:
    db = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        result = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
        backlog = db.execute(f"SELECT count(*) FROM messages WHERE {_unsent(db)}").fetchone()[0]
        held = db.execute("SELECT count(*) FROM messages WHERE clock='held'").fetchone()[0]
        pages, free_pages, page = (db.execute(f"PRAGMA {p}").fetchone()[0]
                                   for p in ("page_count", "freelist_count", "page_size"))
    finally:
        db.close()
    return result, int(backlog), int(held), int((pages - free_pages) * page)


def _unsent(db: sqlite3.Connection) -> str:
    """The outbox condition, in a store of this version or one from before the `sent` table."""
    try:
        db.execute("SELECT 1 FROM sent LIMIT 1")
    except sqlite3.DatabaseError:
        return "sent_at IS NULL"
    from meterbox.outbox.store import UNSENT
    return UNSENT


# ---------------------------------------------------------------------------- certificates

def _not_after(path: Path) -> float | None:
    """The certificate's expiry (seconds since the epoch), or None if it cannot be read."""
    try:
        info = ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
        return float(ssl.cert_time_to_seconds(info["notAfter"]))
    except (AttributeError, KeyError, ValueError, ssl.SSLError, OSError):
        return None


def check_certificates(cfg: Config) -> Iterator[Finding]:
    up = cfg.uplink
    if not up.host:
        yield Finding(WARN, "certificates", "no [uplink] in the config: the box is not enrolled yet")
        return
    now = time.time()
    for key, path in (("ca_file", up.ca_file), ("cert_file", up.cert_file), ("key_file", up.key_file)):
        if path is None:
            level = FAIL if key != "ca_file" else WARN
            yield Finding(level, "certificates", f"uplink.{key} is not set; "
                          + ("the system's CAs are used, not only the vendor's" if key == "ca_file"
                             else "the broker requires a client certificate: re-enroll the box"))
            continue
        if not path.is_file() or not os.access(path, os.R_OK):
            yield Finding(FAIL, "certificates", f"uplink.{key} {path} is missing or unreadable; restore it "
                                                "or re-enroll the box")
            continue
        if key == "key_file":
            continue
        expiry = _not_after(path)
        if expiry is None:
            yield Finding(FAIL if key == "cert_file" else WARN, "certificates",
                          f"uplink.{key} {path}: not a PEM certificate that can be read")
        elif expiry < now:
            yield Finding(FAIL, "certificates", f"uplink.{key} {path} expired on {time.strftime('%Y-%m-%d', time.gmtime(expiry))}"
                          + ("; re-enroll the box for a new one" if key == "cert_file" else "; ask the vendor for its new CA")
                          + " (or this box's clock is wrong: see the clock line)")
        elif expiry - now < EXPIRY_WARNING:
            yield Finding(WARN, "certificates", f"uplink.{key} {path} expires on "
                          f"{time.strftime('%Y-%m-%d', time.gmtime(expiry))}; renew it before then")
        else:
            yield Finding(OK, "certificates", f"uplink.{key} {path} valid until "
                          f"{time.strftime('%Y-%m-%d', time.gmtime(expiry))}")
    if up.cert_file and up.key_file and up.cert_file.is_file() and up.key_file.is_file():
        try:
            ssl.create_default_context().load_cert_chain(str(up.cert_file), str(up.key_file))
        except ssl.SSLError as err:
            yield Finding(FAIL, "certificates", f"the key {up.key_file} does not belong to the certificate "
                          f"{up.cert_file} ({err.reason or err}); put the matching pair back or re-enroll")
        else:
            yield Finding(OK, "certificates", "the client key matches its certificate")


# ---------------------------------------------------------------------------- files

def check_files(cfg: Config) -> Iterator[Finding]:
    """The client key, the config (SNMP communities, proxy password) and the state directory are for
    the service user only."""
    checks = [(cfg.uplink.key_file, "the client key {path}", 0o600),
              (cfg.path, "{path} holds the SNMP communities and", 0o600),
              (cfg.state_dir, "the state directory {path} (the store)", 0o700)]
    for path, what, mode in checks:
        if path is None:
            continue
        try:
            st = path.stat()
        except OSError:
            continue   # missing: the certificates check says so
        readers = [who for who, bit in (("its group", stat.S_IRGRP), ("any user", stat.S_IROTH)) if st.st_mode & bit]
        if readers:
            yield Finding(WARN, "files", what.format(path=path) + f" can be read by {' and '.join(readers)} "
                          f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod {mode:o} {path}`"
                          + _as_owner(st.st_uid))


def _as_owner(uid: int) -> str:
    """Where the file's owner is not who runs doctor, say whose the file must stay."""
    if uid == os.geteuid():
        return ""
    try:
        import pwd
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        name = str(uid)
    return f" (it stays readable by its owner, {name}, which must be the user the service runs as)"


# ---------------------------------------------------------------------------- clock

def check_clock() -> Iterator[Finding]:
    clock = system_clock()
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(clock.now()))
    if clock.synced():
        yield Finding(OK, "clock", f"{clock.describe()}; it is {now}")
    else:
        yield Finding(WARN, "clock", f"{clock.describe()}; the box believes it is {now}. Readings wait for "
                                     "a synchronised clock (at most an hour). Allow NTP (UDP port 123) to "
                                     "the internet or to the office's time server; `timedatectl` shows progress")


# ---------------------------------------------------------------------------- broker

def check_broker(cfg: Config) -> Iterator[Finding]:
    from meterbox.box.pause import PauseSwitch
    from meterbox.uplink.tls import explain_tls, tls_context, ways

    up = cfg.uplink
    if not up.host:
        return
    if PauseSwitch(cfg.state_dir, cfg.runtime_dir).read():
        yield Finding(OK, "broker", "uploads are paused: the broker was not contacted (`meterbox resume`)")
        return
    results: list[tuple[bool, str]] = []
    for way in ways(up):
        where = way.describe(up.host)
        try:
            context = tls_context(up)
            with _connect(up.host, way.port, way.proxy) as raw:
                with context.wrap_socket(raw, server_hostname=up.host) as tls:
                    version = tls.version()
                    _refused_after_handshake(tls)
        except Exception as err:  # every failure is explained, none is fatal to the other checks
            results.append((False, str(explain_tls(err, up, way))))
            continue
        results.append((True, f"{where}: reachable; TLS verified ({version}), the client certificate accepted"))
    works = any(ok for ok, _ in results)
    for ok, text in results:
        text = text.removeprefix("broker ")   # the topic column says "broker" already
        if ok:
            yield Finding(OK, "broker", text)
        else:  # with transport "auto" one way that works is enough
            yield Finding(WARN if works else FAIL, "broker", text + ("; another way works" if works else ""))


def _connect(host: str, port: int, proxy: object) -> socket.socket:
    if proxy is None:
        return socket.create_connection((host, port), timeout=5)
    import socks

    from meterbox.config import ProxyConfig
    assert isinstance(proxy, ProxyConfig)
    sock: socket.socket = socks.create_connection(
        (host, port), timeout=5, proxy_type=socks.HTTP if proxy.scheme == "http" else socks.SOCKS5,
        proxy_addr=proxy.host, proxy_port=proxy.port, proxy_rdns=True, proxy_username=proxy.user or None,
        proxy_password=proxy.password.reveal() if proxy.password else None)
    return sock


def _refused_after_handshake(tls: ssl.SSLSocket) -> None:
    """With TLS 1.3 a broker refuses the client certificate only after the handshake: listen briefly."""
    tls.settimeout(1.0)
    try:
        data = tls.recv(1)
    except (socket.timeout, TimeoutError):
        return  # silence: the broker waits for our MQTT CONNECT, so it accepted us
    if not data:
        raise ssl.SSLError("EOF: the broker closed the connection after the handshake")
