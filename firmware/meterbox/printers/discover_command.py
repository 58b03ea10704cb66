"""`meterbox discover`: sweep the network now and list the printers found, with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from meterbox.config import Config, Credential, Secret, load
from meterbox.errors import MeterboxError
from meterbox.logs import plural


def add_arguments(p: argparse.ArgumentParser, default_config: Path) -> None:
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
                   f"(default {default_config}, if it exists)")


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


def run(args: argparse.Namespace, default_config: Path) -> int:
    if args.rate is not None and not 1 <= args.rate <= 10000:
        raise MeterboxError("--rate must be 1–10000 packets per second")
    if args.timeout <= 0:
        raise MeterboxError("--timeout must be more than 0 seconds")
    path = args.config or (default_config if default_config.exists() else None)
    cfg = load(path) if path else None
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
