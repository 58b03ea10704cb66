"""The `meterbox` command: poll a printer, run the daemon, show what was sent and the status."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from meterbox import __version__
from meterbox.config import Config, Credential, Secret, load
from meterbox.errors import MeterboxError
from meterbox.reading import utc_iso

DEFAULT_CONFIG = Path(os.environ.get("METERBOX_CONFIG", "/etc/meterbox/meterbox.toml"))
log = logging.getLogger("meterbox")


def _credential_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SNMP credentials (default: v2c community public)")
    g.add_argument("--community", "-c", help="v1/v2c community string")
    g.add_argument("--snmp-version", "-v", choices=["1", "2c", "3"], help="SNMP version (default 2c, or 3 with --user)")
    g.add_argument("--user", "-u", help="SNMPv3 user name")
    g.add_argument("--auth-protocol", "-a", default="SHA", help="SNMPv3 auth protocol (SHA, SHA256, ..., MD5)")
    g.add_argument("--auth-key", "-A", help="SNMPv3 auth pass phrase")
    g.add_argument("--priv-protocol", "-x", default="AES", help="SNMPv3 privacy protocol (AES, AES256, DES)")
    g.add_argument("--priv-key", "-X", help="SNMPv3 privacy pass phrase")
    g.add_argument("--context", "-n", default="", help="SNMP context name")
    g.add_argument("--timeout", type=float, default=2.0, help="seconds per request (default 2)")
    g.add_argument("--retries", type=int, default=1, help="retries per request (default 1)")


def _credential(args: argparse.Namespace) -> Credential:
    version = args.snmp_version or ("3" if args.user else "2c")
    if version == "3":
        if not args.user:
            raise MeterboxError("SNMPv3 needs --user; add --auth-key (and --priv-key for authPriv)")
        return Credential(version="3", user=args.user, auth_protocol=args.auth_protocol.upper(),
                          auth_key=Secret(args.auth_key) if args.auth_key else None,
                          priv_protocol=args.priv_protocol.upper(),
                          priv_key=Secret(args.priv_key) if args.priv_key else None, context=args.context)
    return Credential(version=version, community=Secret(args.community or "public"), context=args.context)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meterbox", description="Reads printer billing meters and supplies "
                                "over SNMP and forwards them to the vendor over TLS.")
    p.add_argument("--version", action="version", version=f"meterbox {__version__}")
    p.add_argument("--debug", action="store_true", help="log every SNMP and MQTT step")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    poll = sub.add_parser("poll", help="read one printer now and print what would be sent")
    poll.add_argument("host", metavar="HOST[:PORT]")
    poll.add_argument("--json", action="store_true", help='print {"device": ..., "reading": ...} as JSON')
    poll.add_argument("--explain", action="store_true", help="show the OID, raw value and rule behind each value")
    poll.add_argument("--box-id", default="MB-000000", help=argparse.SUPPRESS)
    _credential_args(poll)

    run = sub.add_parser("run", help="the daemon: poll on schedule, store, upload")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    for name, text in (("sent", "show exactly what left the box (transparency log)"),
                       ("status", "show printers, last poll, backlog, last upload, last error")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        s.add_argument("--json", action="store_true")
        if name == "sent":
            s.add_argument("--limit", type=int, default=20, help="how many messages, newest first (default 20)")
            s.add_argument("--serial", help="only this printer")

    chk = sub.add_parser("check-config", help="validate a config file and exit")
    chk.add_argument("config", type=Path)
    for name, text in (("pause", "stop all communication with the vendor (kept across reboots)"),
                       ("resume", "allow communication with the vendor again")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.debug:
        for noisy in ("pysnmp", "pyasn1", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except MeterboxError as err:
        print(f"meterbox: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_poll(args: argparse.Namespace) -> int:
    from meterbox.poll import read_printer
    from meterbox.snmp import SnmpClient, Target, parse_address

    host, port = parse_address(args.host)
    target = Target(host, port, _credential(args), timeout=args.timeout, retries=args.retries)

    async def go() -> Any:
        client = SnmpClient()
        try:
            return await read_printer(client, target, strict=False)
        finally:
            client.close()

    result = asyncio.run(go())
    if not result.reading.meters and not result.reading.supplies:
        print(f"meterbox: the device at {target.address} gives no Printer-MIB meters or supplies; "
              "if it is a printer, check that its SNMP agent exposes the Printer-MIB", file=sys.stderr)
    device = {"manufacturer": result.device.manufacturer, "model": result.device.model,
              "serial": result.device.serial or None}
    if args.json:
        out: dict[str, Any] = {"device": device, "reading": result.reading.payload(args.box_id)}
        if args.explain:
            out["explain"] = [{"name": s.name, "oid": s.oid, "raw": _raw(s.raw), "rule": s.rule}
                              for s in result.explain]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    d = result.device
    print(f"{d.manufacturer or '?'} {d.model or '?'}   serial {d.serial or '(none)'}   profile {d.profile}")
    by_name = {s.name: s for s in result.explain}
    print("meters:" if result.reading.meters else "meters: none found")
    for m in result.reading.meters:
        print(f"  {m.name:<26} {m.value:>12,} {m.unit}" + _explained(args, by_name.get(m.name)))
    print("supplies:" if result.reading.supplies else "supplies: none found")
    for s in result.reading.supplies:
        level = f"{s.level:>3} %" if s.level is not None else "  - "
        print(f"  {s.name:<26} {level}  {s.state}" + _explained(args, by_name.get(s.name)))
    if args.explain and "serial" in by_name:
        print(f"serial from {by_name['serial'].oid} = {_raw(by_name['serial'].raw)!r} ({by_name['serial'].rule})")
    return 0


def _raw(value: object) -> object:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex()
    return value


def _explained(args: argparse.Namespace, source: Any) -> str:
    if not args.explain or source is None:
        return ""
    return f"\n      from {source.oid} = {_raw(source.raw)!r}  [{source.rule}]"


def _config(path: Path) -> Config:
    return load(path)


def cmd_run(args: argparse.Namespace) -> int:
    from meterbox.daemon import Daemon

    cfg = _config(args.config)
    logging.getLogger().setLevel(cfg.log_level.upper())

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Daemon(cfg).run(stop)

    asyncio.run(go())
    return 0


def _store(path: Path) -> Any:
    from meterbox.store import Store
    return Store(_config(path).state_dir / "meterbox.db")


def cmd_sent(args: argparse.Namespace) -> int:
    store = _store(args.config)
    messages = store.sent(args.limit, args.serial)
    if args.json:
        for m in messages:
            print(json.dumps({"sent_at": utc_iso(m.sent_at or 0), "topic": m.topic,
                              "payload": json.loads(m.wire())}, ensure_ascii=False))
        return 0
    if not messages:
        print("nothing has been sent yet")
    for m in messages:
        print(f"{utc_iso(m.sent_at or 0)}  {m.topic}\n  {m.wire()}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = _store(args.config)
    printers = store.printers()
    summary = {"paused": store.state("paused") == "1", "backlog": store.backlog(),
               "last_upload": _when(store.last_upload()), "last_error": store.state("last_error"),
               "printers": printers, "meters_held": json.loads(store.state("meters_held") or "[]")}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
        return 0
    print(f"uploads: {'PAUSED' if summary['paused'] else 'on'}   backlog: {summary['backlog']}   "
          f"last upload: {summary['last_upload'] or 'never'}")
    if summary["last_error"]:
        print(f"last error: {summary['last_error']}")
    for held in summary["meters_held"]:
        print(f"held back: printer {held['serial']} {held['meter']}: {held['reason']}")
    print(f"{len(printers)} printers")
    for p in printers:
        state = "ok" if not p["last_error"] else p["last_error"]
        name = f"{p['manufacturer'] or ''} {p['model'] or ''}".strip() or "?"
        print(f"  {p['address']:<22} {p['serial'] or '-':<16} {name:<32} last poll {_when(p['last_poll']) or 'never'}: {state}")
    return 0


def _when(value: Any) -> str | None:
    return utc_iso(float(value)) if value else None


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    print(f"{args.config}: ok ({len(cfg.printers)} printers, uplink {cfg.uplink.host or 'not set'})")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    store = _store(args.config)
    store.set_state("paused", "1")
    store.set_state("paused_at", utc_iso(time.time()))
    print("uploads paused: the box will not contact the vendor until `meterbox resume`")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    store = _store(args.config)
    store.set_state("paused", None)
    print(f"uploads resumed; {store.backlog()} readings waiting will be sent")
    return 0


COMMANDS = {"poll": cmd_poll, "run": cmd_run, "sent": cmd_sent, "status": cmd_status,
            "check-config": cmd_check_config, "pause": cmd_pause, "resume": cmd_resume}
