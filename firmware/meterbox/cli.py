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
from meterbox.printers import discover_command
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

    discover_command.add_arguments(sub.add_parser("discover", help="find the printers on the network now and "
                                                  "list them"), DEFAULT_CONFIG)

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
    from meterbox.box.report import shown

    d = result.device
    print(f"{d.manufacturer or '?'} {d.model or '?'}   serial {shown(d.serial) or '(none)'}   profile {d.profile}")
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
    from meterbox.box import report

    cfg = _config(args.config)
    with _store(args.config) as store:
        summary = report.summary(cfg, store)
        have_store = store is not None
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
        return 0
    print(report.status_text(cfg, summary, have_store))
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    return discover_command.run(args, DEFAULT_CONFIG)


def cmd_enroll(args: argparse.Namespace) -> int:
    from meterbox.box.report import enrollment

    cfg = _config(args.config)
    info = enrollment(cfg)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    if info is None:
        print("this box's uplink is configured by hand ([uplink] in the config): it does not enroll")
        return 0
    print(f"box {info['box']} (identity {info['identity']}): {info['state']}"
          + (f" since {info['since']}" if info["since"] else ""))
    if info["message"] and info["state"] != "enrolled":   # an enrolled box's message is its site line below
        print(f"  {info['message']}")
    if info["site"]:
        s = info["site"]
        print(f"  site {s['name']!r}; broker {s['broker']}; certificate valid until {s['certificate_until']}, "
              f"renewed after {s['renew_after']}")
    elif info["state"] in ("not started", "waiting"):
        print("  scan the QR code on the box's label with a phone and confirm; the box asks the vendor every few "
              "seconds while the service runs")
    return 0


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
