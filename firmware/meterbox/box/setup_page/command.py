"""`meterbox print-setup-page`: the page from the config and the store, to a file or a printer; no daemon needed."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

from meterbox.box.legend import Legend
from meterbox.box.setup_page.info import SetupInfo, from_config
from meterbox.box.setup_page.render import render
from meterbox.box.setup_page.send import send_ipp, send_page, send_to_first
from meterbox.config import Config, parse_host
from meterbox.errors import MeterboxError

log = logging.getLogger(__name__)


class _NoStore:
    """Stands in for a store that does not exist yet (a box that never ran): nothing found, nothing sent."""

    def state(self, key: str) -> None:
        return None

    def last_upload(self) -> None:
        return None

    def printers(self) -> list[dict[str, Any]]:
        return []


def open_store(cfg: Config) -> Any:
    """The daemon's store, read-only beside it (SQLite WAL), or a stand-in when there is none yet."""
    path = cfg.state_dir / "meterbox.db"
    if not path.exists():
        return _NoStore()
    from meterbox.outbox.store import Store

    return Store.reader(path)


def printer_hosts(store: Any) -> list[tuple[str, int | None]]:
    """The printers the box found, answering ones first, as hosts for IPP/9100 (their SNMP port is not a print port)."""
    rows = sorted(store.printers(), key=lambda r: (r.get("last_error") is not None, r.get("address") or ""))
    hosts: list[tuple[str, int | None]] = []
    for row in rows:
        host, _ = parse_host(str(row["address"]))
        if (host, None) not in hosts:
            hosts.append((host, None))
    return hosts


def run(cfg: Config, *, identity_dir: Path, printer: str | None = None, out: Path | None = None) -> str:
    """Write the page to OUT (PDF, or PostScript for .ps), or print it; returns what was done, in words."""
    store = open_store(cfg)
    try:
        info: SetupInfo = from_config(cfg, store, identity_dir=identity_dir)
        hosts = printer_hosts(store)
    finally:
        if hasattr(store, "close"):
            store.close()
    legend = Legend.load()

    def page(fmt: str) -> bytes:
        return render(info, legend, fmt)

    if out is not None:
        fmt = "ps" if out.suffix.lower() in (".ps", ".eps") else "pdf"
        try:
            out.write_bytes(page(fmt))
        except OSError as err:
            raise MeterboxError(f"cannot write the setup page to {out} ({err.strerror or err}); "
                                "pick a folder you may write to") from None
        return f"setup page ({fmt.upper()}) written to {out}"
    if printer and printer.startswith("ipp://"):
        url = urllib.parse.urlsplit(printer)
        sent = send_ipp(url.hostname or "", url.port or 631, url.path or "/ipp/print", page)
    elif printer:
        try:
            host, port = parse_host(printer)
        except ValueError as err:
            raise MeterboxError(f"--printer {printer!r} is not a printer address: {err}") from None
        sent = send_page(host, port, page)
    else:
        sent = send_to_first(hosts, page)
    log.info("%s", sent, extra={"METERBOX_EVENT": "setup-page"})
    return str(sent)
