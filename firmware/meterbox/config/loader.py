"""Reading a config file: every table in one pass, every problem gathered before any is reported."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from meterbox.config.report import ConfigProblems, Problem, _Invalid, _line_index, _show, _did_you_mean
from meterbox.config.schema import (ARRAY_TABLES, PanelConfig, AUTH_PROTOCOLS, Config, Credential, DEFAULT_RUNTIME_DIR,
                                    DEFAULT_STATE_DIR, DiscoveryConfig, EnrollConfig, LOG_LEVELS,
                                    PRIV_PROTOCOLS, PollConfig, PrinterTarget, Secret, StoreConfig, TABLE_KEYS,
                                    UplinkConfig, V3_ONLY_KEYS, VERSIONS)
from meterbox.config.schema import _NO_HOST, T
from meterbox.config.values import (TRANSPORTS, parse_duration, parse_host, parse_proxy, parse_range, parse_size)
from meterbox.config.values import (_bool, _box_id, _choice, _filled, _host_with_port, _path_under, _prefix,
                                    _secret, _serial, _text, _url_path, _v3_key, _whole)
from meterbox.errors import ConfigError

# ---------------------------------------------------------------------------- tables

_MISSING: Any = object()


class _Reader:
    """What all tables of one file share: the problems found so far and where keys are."""

    def __init__(self, text: str, base: Path) -> None:
        self.lines = _line_index(text)
        self.base = base
        self.problems: list[Problem] = []


class _Table:
    """One TOML table being read; each problem it records carries its key's line."""

    def __init__(self, reader: _Reader, data: Mapping[str, Any], table: str = "", index: int = 0) -> None:
        self.reader, self.data, self.table, self.index = reader, data, table, index
        self.bad: set[str] = set()

    @property
    def name(self) -> str:
        """How messages name the table: "poll", or "printers[2]" for the second [[printers]]."""
        return f"{self.table}[{self.index}]" if self.index else self.table

    def line(self, key: str) -> int | None:
        """The key's line, else its table header's, else None (e.g. inline tables)."""
        lines = self.reader.lines
        return lines.get((self.table, self.index, key)) or lines.get((self.table, self.index, ""))

    def problem(self, key: str, message: str, value: Any = _MISSING) -> None:
        """Record that KEY is wrong, echoing its value unless it is a secret."""
        subject = ".".join(part for part in (self.name, key) if part)
        if value is not _MISSING:
            subject += " = " + _show(key, value)
        self.bad.add(key)
        self.reader.problems.append(Problem(subject, message, self.line(key)))

    def get(self, key: str, parse: Callable[[Any], T], default: T, missing: str = "") -> T:
        """KEY parsed, or DEFAULT when absent or bad; bad values (and absent required ones) are recorded."""
        if key not in self.data:
            if missing:
                self.problem(key, missing)
            return default
        try:
            return parse(self.data[key])
        except _Invalid as exc:
            self.problem(key, str(exc), self.data[key])
            return default

    def check_keys(self) -> None:
        """Record keys the schema does not know, with the closest known one."""
        for key, value in self.data.items():
            if key not in TABLE_KEYS[self.table]:
                self.problem(key, _unknown(self.table, key, value))


def _header(name: str) -> str:
    """How a table's header is written, for messages."""
    return f"[[{name}]]" if name in ARRAY_TABLES else f"[{name}]"


def _unknown(table: str, key: str, value: Any) -> str:
    """Why KEY is not accepted; a top-level key that belongs in a table says which."""
    homes = [name for name, keys in TABLE_KEYS.items() if name and key in keys]
    if len(homes) > 1 and "discovery" in homes:     # interval, concurrency: almost always meant for [poll]
        homes.remove("discovery")
    if not table and homes and not isinstance(value, (dict, list)):
        return "not a top-level key; move it under " + " or ".join(map(_header, homes))
    kind = "unknown table" if not table else "unknown key"
    return kind + _did_you_mean(key, TABLE_KEYS[table])


def _section(top: _Table, name: str) -> _Table:
    """The [NAME] table, or an empty one (after recording why) so reading goes on."""
    value = top.data.get(name, {})
    if not isinstance(value, dict):
        top.problem(name, f"expected a table; write it as a [{name}] header with its keys below")
        value = {}
    table = _Table(top.reader, value, name)
    table.check_keys()
    return table


def _entries(top: _Table, name: str) -> list[_Table]:
    """Each [[NAME]] entry as a table; a single [NAME] or a plain value is recorded as a problem."""
    value = top.data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        top.problem(name, f"expected [[{name}]] entries (double brackets), one per {name[:-1]}")
        return []
    tables = [_Table(top.reader, item, name, number) for number, item in enumerate(value, start=1)]
    for table in tables:
        table.check_keys()
    return tables


# ---------------------------------------------------------------------------- sections

def _port(table: _Table, in_host: int | None, default: int) -> int:
    """The port key, or the one written in host; both given and different is an error."""
    port = table.get("port", _whole(1, 65535), in_host or default)
    if in_host and "port" in table.data and "port" not in table.bad and port != in_host:
        table.problem("port", f"differs from the port in host ({in_host}); keep only one", table.data["port"])
    return port


def _poll(table: _Table) -> PollConfig:
    """How often and how patiently printers are read."""
    default = PollConfig()
    return PollConfig(
        interval=table.get("interval", parse_duration, default.interval),
        timeout=table.get("timeout", parse_duration, default.timeout),
        retries=table.get("retries", _whole(0, 10), default.retries),
        concurrency=table.get("concurrency", _whole(1, 256), default.concurrency),
    )


def _credential(table: _Table) -> Credential:
    """One credential set, checked by the rules of its SNMP version."""
    version = table.get("version", _choice(VERSIONS, str.lower), "2c")
    return _v3(table) if version == "3" else _community(table, version)


def _community(table: _Table, version: str) -> Credential:
    """v1/v2c: a community only; v3 keys here mean version = "3" was forgotten."""
    if "version" not in table.bad:
        for key in V3_ONLY_KEYS:
            if key in table.data:
                table.problem(key, f'only used with version = "3"; add version = "3" or remove {key}')
    return Credential(version=version, community=table.get("community", _secret, Secret("public")))


def _v3(table: _Table) -> Credential:
    """SNMPv3: a user, keys long enough for the agent, and no privacy without authentication."""
    if "community" in table.data:
        table.problem("community", 'only used with version "1" or "2c"; SNMPv3 uses user, auth_key and priv_key')
    if "priv_key" in table.data and "auth_key" not in table.data:
        table.problem("priv_key", "needs auth_key too (SNMPv3 has no privacy without authentication); add auth_key")
    priv_protocol = table.get("priv_protocol", _choice(PRIV_PROTOCOLS, str.upper), "AES")
    return Credential(
        version="3",
        user=table.get("user", _filled, "", missing='missing; add user = "..." (the SNMPv3 user name)'),
        auth_protocol=table.get("auth_protocol", _choice(AUTH_PROTOCOLS, str.upper), "SHA"),
        auth_key=table.get("auth_key", _v3_key, None),
        priv_protocol="AES" if priv_protocol == "AES128" else priv_protocol,
        priv_key=table.get("priv_key", _v3_key, None),
        context=table.get("context", _text, ""),
    )


def _printers(tables: list[_Table]) -> tuple[PrinterTarget, ...]:
    """Manual printers; one address listed twice is refused, since it would be polled twice."""
    seen: dict[tuple[str, int], str] = {}
    printers: list[PrinterTarget] = []
    for table in tables:
        host, in_host = table.get("host", parse_host, _NO_HOST,
                                  missing='missing; add host = "192.0.2.10" (an address or DNS name)')
        printer = PrinterTarget(host, _port(table, in_host, 161), _credential(table))
        address = (host.lower(), printer.port)
        if host and address in seen:
            table.problem("host", f"same printer as {seen[address]}; remove one of them", table.data["host"])
        seen.setdefault(address, table.name)
        printers.append(printer)
    return tuple(printers)


def _discovery(table: _Table) -> DiscoveryConfig:
    """Sweep settings; each bad range or host is its own problem, naming the entry."""
    default = DiscoveryConfig()
    return DiscoveryConfig(
        enabled=table.get("enabled", _bool, default.enabled),
        interval=table.get("interval", parse_duration, default.interval),
        max_prefix=table.get("max_prefix", _prefix, default.max_prefix),
        ranges=tuple(_each(table, "ranges", parse_range)),
        hosts=tuple(_each(table, "hosts", _host_with_port)),
        rate=table.get("rate", _whole(1, 10000), default.rate),
        concurrency=table.get("concurrency", _whole(1, 4096), default.concurrency),
        mdns=table.get("mdns", _bool, default.mdns),
    )


def _enroll(table: _Table) -> EnrollConfig:
    """auto = true, or the serial numbers the key user picked."""
    serials = tuple(_each(table, "serials", _serial))
    auto = table.get("auto", _bool, not serials)
    return EnrollConfig(auto=auto, serials=serials)



def _each(table: _Table, key: str, parse: Callable[[Any], T]) -> list[T]:
    """Every good entry of the list KEY; each bad one is recorded with its own value."""
    values = table.data.get(key, [])
    if not isinstance(values, list):
        table.problem(key, f'expected a list in brackets, such as {key} = ["…", "…"]', values)
        return []
    parsed: list[T] = []
    for value in values:
        try:
            parsed.append(parse(value))
        except _Invalid as exc:
            table.problem(key, str(exc), value)
    return parsed



def _uplink(table: _Table, present: bool) -> UplinkConfig:
    """The vendor broker; file paths are made absolute so the daemon can start from any directory."""
    default, path = UplinkConfig(), _path_under(table.reader.base)
    host, in_host = table.get("host", parse_host, _NO_HOST,
                              missing='missing; add host = "broker.example.com"' if present else "")
    for have, need in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if have in table.data and need not in table.data:
            table.problem(have, f"needs {need} too (a client certificate and its private key go together); add {need}")
    return UplinkConfig(
        host=host,
        port=_port(table, in_host, default.port),
        ca_file=table.get("ca_file", path, None),
        cert_file=table.get("cert_file", path, None),
        key_file=table.get("key_file", path, None),
        keepalive=table.get("keepalive", parse_duration, default.keepalive),
        in_flight=table.get("in_flight", _whole(1, 65535), default.in_flight),
        server_name=table.get("server_name", _text, default.server_name),
        transport=table.get("transport", _choice(TRANSPORTS, str.lower), default.transport),
        websockets_port=table.get("websockets_port", _whole(1, 65535), default.websockets_port),
        websockets_path=table.get("websockets_path", _url_path, default.websockets_path),
        proxy=table.get("proxy", parse_proxy, None),
        heartbeat=table.get("heartbeat", parse_duration, default.heartbeat),
    )


def _config(doc: dict[str, Any], reader: _Reader, path: Path) -> Config:
    """Every section read in one pass, so every problem is known before any is reported."""
    top = _Table(reader, doc)
    top.check_keys()
    box = _section(top, "box")
    identity = box.get("identity", _path_under(reader.base), None)
    poll = _section(top, "poll")
    local = frozenset(name for name, present in (("enroll", "enroll" in doc), ("poll.interval", "interval" in poll.data))
                      if present)
    return Config(
        box_id=box.get("id", _box_id, _identity_box(box, identity),
                       missing="" if identity else 'missing; add id = "MB-…" under [box], as printed on the label, '
                                                   'or identity = the folder of its factory identity'),
        identity=identity,
        vendor_ca_file=box.get("vendor_ca_file", _path_under(reader.base), None),
        local=local,
        state_dir=box.get("state_dir", _path_under(reader.base), DEFAULT_STATE_DIR),
        log_level=box.get("log_level", _choice(LOG_LEVELS, str.lower), "info"),
        runtime_dir=box.get("runtime_dir", _path_under(reader.base), DEFAULT_RUNTIME_DIR),
        poll=_poll(poll),
        printers=_printers(_entries(top, "printers")),
        credentials=tuple(_credential(table) for table in _entries(top, "credentials")),
        uplink=_uplink(_section(top, "uplink"), present="uplink" in doc),
        store=StoreConfig(_section(top, "store").get("max_size", parse_size, StoreConfig().max_bytes)),
        discovery=_discovery(_section(top, "discovery")),
        enroll=_enroll(_section(top, "enroll")),
        panel=_panel(_section(top, "panel"), path),
        path=path,
    )


def _panel(table: _Table, path: Path) -> PanelConfig:
    """[panel]: each pin checked against the 40-pin header and the others (hw/pins.toml)."""
    from meterbox.box.pins import PARTS, PinMap, PinMapError

    pins = {part: table.data[part] for part in PARTS if part in table.data}
    for part in pins:
        try:
            PinMap.load(overrides={part: pins[part]}, where="")
        except PinMapError as err:
            table.problem(part, str(err).lstrip(": ").split(": ", 1)[-1] if ": " in str(err) else str(err),
                          pins[part])
    good = {part: gpio for part, gpio in pins.items() if part not in table.bad}
    try:
        PinMap.load(overrides=good, where="")
    except PinMapError as err:
        clash = next((part for part in reversed(PARTS) if part in good), "button")
        table.problem(clash, str(err).split(": ", 1)[-1], good.get(clash, _MISSING))
    line = table.line("")
    where = "" if not table.data else f"{path.name} line {line} [panel]" if line else f"{path.name} [panel]"
    return PanelConfig(enabled=table.get("enabled", _bool, None), pins=tuple(good.items()), where=where)


def _identity_box(box: _Table, identity: Path | None) -> str:
    """The box id from the factory identity (identity.json), when [box] gives no id."""
    if identity is None or "id" in box.data:
        return ""
    try:
        found = json.loads((identity / "identity.json").read_text(encoding="utf-8"))["box"]
        return _box_id(found)
    except (OSError, ValueError, KeyError, TypeError, _Invalid) as err:
        box.problem("identity", f"{identity / 'identity.json'} cannot give the box id ({err}); restore the "
                                "box's identity files from the factory, or add id = \"MB-…\" from the label",
                    str(identity))
        return ""


# ---------------------------------------------------------------------------- entry point

def _read(path: Path) -> str:
    """The file's text; a missing or unreadable file is one clear error, not a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file; create it (see meterbox.example.toml) "
                          "or give the right path") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); "
                          "check that it is a file the meterbox user may read") from exc


def load(path: Path) -> Config:
    """Read and validate FILE; raise ConfigError listing every problem with its line."""
    path = Path(path)
    text = _read(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix that line, nothing was changed") from exc
    reader = _Reader(text, path.absolute().parent)
    config = _config(doc, reader, path)
    if reader.problems:
        raise ConfigProblems(path, reader.problems)
    return config
