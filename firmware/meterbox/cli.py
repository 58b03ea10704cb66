"""The `meterbox` command: poll a printer, run the daemon, show what was sent and the status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from meterbox import __version__
from meterbox.config import Config, Credential, Secret, load, parse_host
from meterbox.errors import MeterboxError
from meterbox.logs import plural
from meterbox.printers.reading import utc_iso

DEFAULT_CONFIG = Path(os.environ.get("METERBOX_CONFIG", "/etc/meterbox/meterbox.toml"))
DEFAULT_IDENTITY = Path(os.environ.get("METERBOX_IDENTITY", "/etc/meterbox/identity"))
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

    _discover_args(sub.add_parser("discover", help="find the printers on the network now and list them"))

    doc = sub.add_parser("doctor", help="check the store, certificates, clock and broker; say what to do")
    doc.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    doc.add_argument("--recover", type=Path, metavar="FILE",
                     help="put the unsent readings of a damaged store (moved aside) back into the outbox")

    chk = sub.add_parser("check-config", help="validate a config file and exit")
    chk.add_argument("config", type=Path)
    for name, text in (("pause", "stop all communication with the vendor (kept across reboots)"),
                       ("resume", "allow communication with the vendor again")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    enr = sub.add_parser("enroll", help="where the box stands with the vendor: claimed, enrolled, certificate")
    enr.add_argument("--status", action="store_true", help="show it (the default; the daemon does the enrolling)")
    enr.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    enr.add_argument("--json", action="store_true")
    page = sub.add_parser("print-setup-page", help="print the setup page (state, LED legend, printers, "
                          "QR code) on a printer the box found, or write it to a file")
    page.add_argument("--printer", metavar="HOST[:PORT]", help="this printer (port 631 or ipp://HOST:PORT/PATH: "
                      "IPP; another port: raw, e.g. 9100; no port: IPP, then 9100)")
    page.add_argument("--out", type=Path, metavar="FILE", help="write the page here instead (PDF; PostScript "
                      "for a .ps name); needs no printer and no daemon")
    page.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    page.add_argument("--identity", type=Path, metavar="DIR", help="the factory identity (identity.json) for the "
                      f"claim QR code (default: [box] identity in the config, else {DEFAULT_IDENTITY})")
    p_profiles = sub.add_parser("profiles", help="list the vendor profiles: what each matches and reads")
    p_profiles.add_argument("--json", action="store_true", help="print the profiles as JSON")
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
    except BrokenPipeError:  # `meterbox sent | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from meterbox.printers.poll import read_printer
    from meterbox.printers.snmp import SnmpClient, Target

    host, port = _host_arg(args.host)
    target = Target(host, port, _credential(args), timeout=args.timeout, retries=args.retries)

    async def go() -> Any:
        client = SnmpClient()
        try:
            return await read_printer(client, target, strict=False)
        finally:
            client.close()

    from meterbox.outbox import wire

    result = asyncio.run(go())
    if not result.reading.meters and not result.reading.supplies:
        print(f"meterbox: the device at {target.address} gives no Printer-MIB meters or supplies; "
              "if it is a printer, check that its SNMP agent exposes the Printer-MIB", file=sys.stderr)
    result.device = wire.fit_device(result.device)     # as the store would keep and send them
    payload, refused = wire.fit_reading(result.reading, args.box_id)
    if refused and result.device.serial:
        print(f"meterbox: this reading would be kept on the box, not sent: it is outside the wire contract "
              f"({refused})", file=sys.stderr)
    device = {"manufacturer": result.device.manufacturer, "model": result.device.model,
              "serial": result.device.serial or None}
    if args.json:
        out: dict[str, Any] = {"device": device, "reading": payload}
        if args.explain:
            out["explain"] = [{"name": s.name, "oid": s.oid, "raw": _raw(s.raw), "rule": s.rule}
                              for s in result.explain]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    d = result.device
    print(f"{d.manufacturer or '?'} {d.model or '?'}   serial {_shown(d.serial) or '(none)'}   profile {d.profile}")
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
    for refused in (s for s in result.explain if args.explain and s.name == "serial refused"):
        print(f"serial refused: {refused.oid} = {_raw(refused.raw)!r} ({refused.rule})")
    return 0


def _host_arg(text: str) -> tuple[str, int]:
    """HOST[:PORT] from the command line, checked like the config's hosts."""
    try:
        host, port = parse_host(text)
    except ValueError as err:
        raise MeterboxError(f"{text!r} is not a printer address: {err}") from None
    return host, port or 161


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
    from meterbox.box.daemon import Daemon, build
    from meterbox.box.journal import setup_logging
    from meterbox.box.service import Service

    cfg = _config(args.config)
    setup_logging("DEBUG" if args.debug else cfg.log_level)  # the journal, with fields, under systemd
    service = Service.create()
    panel_parts = _panel_parts(cfg)
    if panel_parts:
        _reset_if_held(cfg, *panel_parts)   # before anything opens the store: it may be cleared

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_now() -> None:
            service.stopping()
            stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_now)
        service.extend_timeout(300)   # opening the store checks it (quick_check): long on a big store on an SD card
        parts = build(cfg)
        loop.add_signal_handler(signal.SIGUSR1, parts.fleet.discover_now)   # sweep for printers now
        daemon = Daemon(cfg, parts, on_ready=service.ready, on_status=service.status)
        if panel_parts:
            from meterbox.box.pins import gpio_missing

            pins, legend = panel_parts
            if missing := gpio_missing():   # gpiozero is not even imported: 9 MB spared on a laptop or in CI
                log.info("panel off: %s; the box runs without button and LEDs", missing)
            else:
                from meterbox.box.panel import Panel

                daemon.attach_panel(Panel.create(pins, legend, loop, on_press=daemon.button_pressed,
                                                 on_hold=daemon.button_held), legend)
        watchdog = asyncio.create_task(service.watchdog())   # from the event loop: a stalled loop stops it
        try:
            await daemon.run(stop)
        finally:
            watchdog.cancel()

    asyncio.run(go())
    return 0


def _panel_parts(cfg: Config) -> tuple[Any, Any] | None:
    """The pin map and legend, unless [panel] enabled = false (a board without GPIO says so later, once)."""
    if cfg.panel.enabled is False:
        log.info("panel off ([panel] enabled = false)")
        return None
    from meterbox.box.legend import Legend
    from meterbox.box.pins import PinMap

    return PinMap.load(overrides=dict(cfg.panel.pins), where=cfg.panel.where or "the config"), Legend.load()


def _reset_if_held(cfg: Config, pins: Any, legend: Any) -> None:
    """The button held while powering on: factory reset (site, certificate, store; the identity stays)."""
    from meterbox.box.daemon import DEFAULT_IDENTITY
    from meterbox.box.enroll import site_dir
    from meterbox.box.pins import gpio_missing

    if gpio_missing():
        return
    from meterbox.box.reset import ResetPaths, held_at_start

    site = site_dir(cfg.state_dir)
    try:
        held_at_start(pins, legend, ResetPaths(site=(site,), certificate=(), store=(cfg.state_dir / "meterbox.db",),
                                               identity=cfg.identity or DEFAULT_IDENTITY))
    except Exception as err:  # a busy pin must not keep the box from starting
        log.warning("factory reset check skipped: %s", err)


@contextlib.contextmanager
def _store(path: Path) -> Iterator[Any]:
    """The store, read-only (None if there is none yet): looking must not create it, and must work
    on a read-only card; closed after the command, so no file stays open."""
    from meterbox.outbox.failures import StoreMissing
    from meterbox.outbox.store import Store

    cfg = _config(path)
    try:
        store = Store.reader(cfg.state_dir / "meterbox.db")
    except StoreMissing:
        store = None
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def cmd_sent(args: argparse.Namespace) -> int:
    with _store(args.config) as store:
        messages = store.sent(args.limit, args.serial) if store else []
    if args.json:
        print(json.dumps([{"sent_at": utc_iso(m.sent_at or 0), "topic": m.topic, "payload": json.loads(m.wire())}
                          for m in messages], ensure_ascii=False, indent=2))
        return 0
    if not messages:
        print("nothing has been sent yet")
    for m in messages:
        print(f"{utc_iso(m.sent_at or 0)}  {m.topic}\n  {m.wire()}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from meterbox.box import live
    from meterbox.box.pause import PauseSwitch

    cfg = _config(args.config)
    running = live.read(cfg.runtime_dir)
    pause = PauseSwitch(cfg.state_dir, cfg.runtime_dir)
    with _store(args.config) as store:
        have_store = store is not None
        summary = {"daemon": "running" if running else "not running", "paused": pause.paused,
                   "paused_since": pause.since(), "backlog": store.backlog() if store else 0,
                   "last_upload": _when(store.last_upload() if store else None),
                   "last_error": store.state("last_error") if store else None,
                   "printers": store.printers() if store else [],
                   "meters_held": json.loads((store.state("meters_held") if store else None) or "[]"),
                   "waiting_for_clock": store.held() if store else 0, "live": running,
                   "refused": store.refused() if store else [],
                   "enrollment": _enrollment(cfg)}
    if running and running.get("uplink_error") is not None:
        summary["last_error"] = running["uplink_error"]
    if running and "meters_held" in running:   # the daemon's own view: its store may be in memory, not this file
        summary["meters_held"] = running["meters_held"]
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
        return 0
    print(_status_text(cfg, summary, have_store))
    return 0


def _enrollment(cfg: Config) -> dict[str, Any] | None:
    """Where enrollment stands (None for a box whose uplink is configured by hand)."""
    from meterbox.box.enroll import load_site, site_dir

    if cfg.identity is None or cfg.uplink.host:
        return None
    try:
        noted = json.loads((site_dir(cfg.state_dir) / "enrollment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        noted = {}
    site = load_site(cfg.state_dir, cfg.identity)
    state = noted.get("state") or ("enrolled" if site else "not started")
    out: dict[str, Any] = {"box": cfg.box_id, "identity": str(cfg.identity), "state": state,
                           "since": noted.get("since"), "message": noted.get("message"), "site": None}
    if site:
        out["site"] = {"name": site.name, "broker": f"{site.uplink.host}:{site.uplink.port}",
                       "certificate_until": _when(site.not_after), "renew_after": _when(site.renew_after)}
    return out


def cmd_enroll(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    info = _enrollment(cfg)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    if info is None:
        print("this box's uplink is configured by hand ([uplink] in the config): it does not enroll")
        return 0
    print(f"box {info['box']} (identity {info['identity']}): {info['state']}"
          + (f" since {info['since']}" if info["since"] else ""))
    if info["message"]:
        print(f"  {info['message']}")
    if info["site"]:
        s = info["site"]
        print(f"  site {s['name']!r}; broker {s['broker']}; certificate valid until {s['certificate_until']}, "
              f"renewed after {s['renew_after']}")
    elif info["state"] in ("not started", "waiting"):
        print("  scan the QR code on the box's label with a phone and confirm; the box asks the vendor every few "
              "seconds while the service runs")
    return 0


def _status_text(cfg: Config, summary: dict[str, Any], have_store: bool) -> str:
    """`meterbox status` for a person at a terminal."""
    live = summary["live"]
    lines = []
    if live:
        link = "connected to the vendor" if live.get("connected") else "not connected"
        lines.append(f"daemon: running (pid {live['pid']}); {link}")
        if live.get("fault"):
            from meterbox.box.legend import Legend

            fault = Legend.load().fault(live["fault"])
            lines.append(f"FAULT, red LED {fault.blinks} blinks: {fault.title}. {fault.meaning} "
                         f"What to do: {fault.action}")
        if live.get("store_in_memory"):
            lines.append(f"store problem: {live['store_error']}; the daemon keeps its readings in memory only "
                         "(lost on a power cut) until this is fixed and it is restarted; printers and backlog "
                         "below are from the store file as it was")
        elif live.get("store_error"):
            lines.append(f"store problem: {live['store_error']}; {live.get('in_memory', 0)} readings kept in memory")
    else:
        lines.append("daemon: NOT running; start it with `systemctl start meterbox` (what follows is from the store)")
    enrollment = summary.get("enrollment")
    if enrollment and enrollment["state"] != "enrolled":
        since = f" since {enrollment['since']}" if enrollment["since"] else ""
        lines.append(f"enrollment: {enrollment['state']}{since}"
                     + (f": {enrollment['message']}" if enrollment["message"] else ""))
    if not have_store:
        lines.append(f"no store yet at {cfg.state_dir / 'meterbox.db'}: the daemon makes it when it first runs")
    lines.append(f"uploads: {'PAUSED (' + (summary['paused_since'] or '') + ')' if summary['paused'] else 'on'}   "
                 f"backlog: {summary['backlog']}   last upload: {summary['last_upload'] or 'never'}")
    if summary["last_error"]:
        lines.append(f"last error: {summary['last_error']}")
    if summary["waiting_for_clock"]:
        lines.append(f"{summary['waiting_for_clock']} readings wait for the clock to synchronise (their time is "
                     "corrected then); allow NTP (UDP 123) to the internet; `meterbox doctor` checks the clock")
    for held in summary["meters_held"]:
        lines.append(f"held back: printer {_shown(held['serial'])} {held['meter']}: {held['reason']}")
    for refused in summary["refused"]:
        reason = refused["reason"] or ""
        why = reason if reason.startswith("not enrolled") else f"outside the wire contract ({reason})"
        lines.append(f"not sent: printer {_shown(refused['serial'])}: {refused['count']} {refused['kind']} "
                     f"message(s) kept here: {_shown(why)}")
    printers = summary["printers"]
    configured = len(cfg.printers)
    count = f"{len(printers)} printer{'' if len(printers) == 1 else 's'} polled"
    if configured and len(printers) < configured:
        count += f" ({configured} configured; the others not polled yet)"
    lines.append(count)
    for p in printers:
        state = "ok" if not p["last_error"] else p["last_error"]
        name = _shown(f"{p['manufacturer'] or ''} {p['model'] or ''}".strip()) or "?"
        lines.append(f"  {p['address']:<22} {_shown(p['serial']) or '-':<16} {name:<32} "
                     f"last poll {_when(p['last_poll']) or 'never'}: {_shown(state)}")
    return "\n".join(lines)


def _shown(text: str | None, limit: int = 80) -> str:
    """A printer's text on a terminal: no escapes or control characters, long ones cut."""
    from meterbox.outbox.wire import printable

    shown = printable(text) or ""
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def _when(value: Any) -> str | None:
    return utc_iso(float(value)) if value else None


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    print(f"{args.config}: ok ({len(cfg.printers)} printers, uplink {cfg.uplink.host or 'not set'})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from meterbox.box import doctor

    cfg = _config(args.config)
    if args.recover:
        from meterbox.outbox.recover import recover

        result = recover(cfg.state_dir / "meterbox.db", args.recover, progress=sys.stderr)
        print(f"{result} (from {args.recover}); the service sends them with their original ids")
        return 0
    findings = doctor.run(cfg)
    for finding in findings:
        print(finding)
    bad = [f for f in findings if f.level == doctor.FAIL]
    print(f"{len(bad)} problem{'' if len(bad) == 1 else 's'} found" if bad else "all checks passed")
    return 1 if bad else 0


def _pause_switch(args: argparse.Namespace) -> Any:
    from meterbox.box.pause import PauseSwitch

    cfg = _config(args.config)
    return PauseSwitch(cfg.state_dir, cfg.runtime_dir)


def cmd_pause(args: argparse.Namespace) -> int:
    print(_pause_switch(args).set(True, "`meterbox pause`"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    text = _pause_switch(args).set(False, "`meterbox resume`")
    with _store(args.config) as store:
        waiting = store.backlog() if store else 0
    print(f"{text}; {waiting} message{'' if waiting == 1 else 's'} waiting will be sent")
    return 0


def _discover_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--range", "-r", action="append", default=[], metavar="CIDR|FIRST-LAST",
                   help="sweep this range instead of the box's own subnets (repeatable)")
    p.add_argument("--community", "-c", action="append", default=[],
                   help="v2c community to try, in order (repeatable; default: the config's "
                        "[[credentials]], else public)")
    p.add_argument("--user", "-u", help="also try this SNMPv3 user (after the communities)")
    p.add_argument("--auth-protocol", "-a", default="SHA", help="SNMPv3 auth protocol (default SHA)")
    p.add_argument("--auth-key", "-A", help="SNMPv3 auth pass phrase")
    p.add_argument("--priv-protocol", "-x", default="AES", help="SNMPv3 privacy protocol (default AES)")
    p.add_argument("--priv-key", "-X", help="SNMPv3 privacy pass phrase")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each address (default 1)")
    p.add_argument("--rate", type=int, help="at most this many SNMP packets per second (default 500)")
    p.add_argument("--no-mdns", action="store_true", help="do not listen for printers announcing themselves")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {address, manufacturer, model, serial, credential}")
    p.add_argument("--config", type=Path, help=f"take credentials and [discovery] from this file "
                   f"(default {DEFAULT_CONFIG}, if it exists)")


def _discover_credentials(args: argparse.Namespace, cfg: Config | None) -> list[Credential]:
    """--community values (else the config's [[credentials]], else v2c public), then the --user."""
    from meterbox.printers.discovery import DEFAULT_CREDENTIALS

    creds = [Credential(version="2c", community=Secret(c)) for c in args.community]
    creds = creds or list(cfg.credentials if cfg else ()) or list(DEFAULT_CREDENTIALS)
    if args.user:
        creds.append(Credential(version="3", user=args.user, auth_protocol=args.auth_protocol.upper(),
                                auth_key=Secret(args.auth_key) if args.auth_key else None,
                                priv_protocol=args.priv_protocol.upper(),
                                priv_key=Secret(args.priv_key) if args.priv_key else None))
    return creds


def _discover_ranges(texts: list[str]) -> list[Any]:
    """The --range values that parse; each bad one is one message, and the sweep goes on."""
    from meterbox.config import parse_range

    ranges = []
    for text in texts:
        try:
            ranges.append(parse_range(text))
        except ValueError as err:
            print(f"meterbox: --range {text!r}: {err}; skipped", file=sys.stderr)
    return ranges


class _ClearLine(logging.Filter):
    """On a terminal, a log line first wipes the progress bar it would otherwise run into."""

    def filter(self, record: logging.LogRecord) -> bool:
        sys.stderr.write("\r\033[K")
        return True


def _progress_bar(done: int, total: int, found: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} addresses, "
                     f"{found} printers ")
    sys.stderr.flush()


def cmd_discover(args: argparse.Namespace) -> int:
    if args.rate is not None and not 1 <= args.rate <= 10000:
        raise MeterboxError("--rate must be 1–10000 packets per second")
    if args.timeout <= 0:
        raise MeterboxError("--timeout must be more than 0 seconds")
    path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    cfg = _config(path) if path else None
    ranges = _discover_ranges(args.range)
    if args.range and not ranges:
        raise MeterboxError("no --range could be read; write them as 192.0.2.0/24 or 192.0.2.10-192.0.2.50")
    tty = sys.stderr.isatty()
    if tty:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_ClearLine())
    result = asyncio.run(_sweep(args, cfg, ranges, _progress_bar if tty else None))
    if tty:
        sys.stderr.write("\r\033[K")
    rows = [found.row() for found in result.printers]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        _discover_table(rows, result)
    return 0


async def _sweep(args: argparse.Namespace, cfg: Config | None, ranges: list[Any], progress: Any) -> Any:
    """One sweep: --range replaces the own subnets and the config's ranges and hosts."""
    from dataclasses import replace

    from meterbox.config import DiscoveryConfig
    from meterbox.printers.discovery import Discovery
    from meterbox.printers.snmp import SnmpClient

    settings = cfg.discovery if cfg else DiscoveryConfig()
    if args.rate:
        settings = replace(settings, rate=args.rate)
    client = SnmpClient()
    try:
        finder = Discovery(client, _discover_credentials(args, cfg), settings, probe_timeout=args.timeout,
                           poll_timeout=cfg.poll.timeout if cfg else 2.0, progress=progress)
        return await finder.sweep(ranges if args.range else None, [] if args.range else None,
                                  own_subnets=not args.range, mdns=False if args.no_mdns else None)
    finally:
        client.close()


def _discover_table(rows: list[dict[str, Any]], result: Any) -> None:
    keys = ("address", "manufacturer", "model", "serial", "credential")
    cells = [[str(row[k] or "-") for k in keys] for row in rows]
    widths = [max([len(k)] + [len(c[i]) for c in cells]) for i, k in enumerate(keys)]
    for line in [[k.upper() for k in keys], *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    for found in result.printers:
        if found.also_at:
            print(f"printer {found.serial} also answers at {', '.join(found.also_at)} (another network port)")
    print(f"{plural(len(rows), 'printer')} in {plural(result.addresses, 'address', 'addresses')} "
          f"({result.seconds:.1f} s); {plural(len(result.others), 'other SNMP device')} ignored")
    if result.own:
        print(f"the box's own address {', '.join(result.own)} is in the range and was not probed")


def cmd_profiles(args: argparse.Namespace) -> int:
    """List the vendor profiles: which printers each claims, what it reads, which recordings test it."""
    from meterbox.printers.profiles import loader

    rows: list[dict[str, Any]] = [{"name": p.name, "manufacturer": p.manufacturer, "match": list(p.match),
             "match_descr": list(p.match_descr),
             "match_probe": {"oid": p.match_probe[0], "contains": list(p.match_probe[1])} if p.match_probe else None,
             "covers": p.covers, "recordings": list(p.recordings)} for p in loader.vendor_profiles()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:<16} {r['manufacturer']:<16} sysObjectID {', '.join(r['match'])}")
        if r["match_descr"] or r["match_probe"]:
            also = [f"sysDescr {d}" for d in r["match_descr"]]
            probe = r["match_probe"]
            also += [f"{probe['oid']} contains " + " or ".join(repr(c) for c in probe["contains"])] if probe else []
            print(f"  also matches: {'; '.join(also)}")
        print(f"  covers:       {r['covers']}")
        print(f"  recordings:   {', '.join(r['recordings']) or '(none)'}")
    print(f"{len(rows)} vendor profiles, each layered over the standard profile "
          "(Printer-MIB, Host Resources MIB, PWG Imaging System Counter MIB)")
    return 0


COMMANDS = {"poll": cmd_poll, "run": cmd_run, "sent": cmd_sent, "status": cmd_status,
            "check-config": cmd_check_config, "doctor": cmd_doctor, "pause": cmd_pause, "resume": cmd_resume,
            "discover": cmd_discover, "enroll": cmd_enroll}
COMMANDS["profiles"] = cmd_profiles


def cmd_print_setup_page(args: argparse.Namespace) -> int:
    from meterbox.box.setup_page import command

    cfg = _config(args.config)
    identity = args.identity or cfg.identity or DEFAULT_IDENTITY
    print(command.run(cfg, identity_dir=identity, printer=args.printer, out=args.out))
    return 0


COMMANDS["print-setup-page"] = cmd_print_setup_page
