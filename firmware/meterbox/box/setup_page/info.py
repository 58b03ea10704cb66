"""What the setup page shows, gathered once (``SetupInfo``), from the config and the store or from the daemon."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from meterbox import __version__
from meterbox.box.legend import Legend
from meterbox.box.state import BoxState
from meterbox.config import Config


@dataclass(frozen=True)
class PrinterRow:
    """A printer the box found; its address stays in the building (it is printed, never sent)."""

    model: str
    serial: str | None
    address: str
    enrolled: bool


@dataclass(frozen=True)
class SetupInfo:
    """Everything on the page; the daemon can build it from what it knows, the CLI from config + store.

    Example::

        SetupInfo(box_id="MB-7F3A9C", state=BoxState(unclaimed=True),
                  claim_url="https://vendor.example/claim?box=MB-7F3A9C&code=K7Q2-M9XD", address="192.0.2.7")
    """

    box_id: str
    state: BoxState
    claim_url: str | None = None     # from the factory identity; the QR code while unclaimed
    address: str | None = None       # the box's own LAN address; the QR code once claimed
    printers: tuple[PrinterRow, ...] = ()
    last_upload: float | None = None
    firmware: str = __version__
    printed_at: float = field(default_factory=time.time)

    @property
    def qr_url(self) -> str | None:
        """The claim URL while unclaimed, else the box's own page (http://<address>/)."""
        if self.state.unclaimed and self.claim_url:
            return self.claim_url
        return local_url(self.address) if self.address else None

    @property
    def qr_caption(self) -> str:
        if self.state.unclaimed and self.claim_url:
            return "Scan with a phone to claim this box"
        return "This box's page on your network"


def local_url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}/"


def state_words(info: SetupInfo, legend: Legend) -> list[str]:
    """The state as sentences: what the LEDs show and, for a fault, its meaning and what to do."""
    chosen, fault = legend.choose(info.state)
    if fault is not None:
        return [f"Fault, {fault.blinks} red blinks: {fault.title}. {fault.meaning}", f"What to do: {fault.action}"]
    words = [chosen.meaning]
    if info.state.paused and chosen.name != "paused":
        words.append("Uploads are paused.")
    return words


def claim_url(identity_dir: Path) -> tuple[str | None, str | None]:
    """(box id, claim URL) from the factory identity (identity.json), or (None, None) if there is none."""
    try:
        data = json.loads((identity_dir / "identity.json").read_text())
        box, vendor, code = str(data["box"]), str(data["vendor"]).rstrip("/"), str(data["claim_code"])
    except (OSError, ValueError, KeyError):
        return None, None
    return box, f"{vendor}/claim?{urllib.parse.urlencode({'box': box, 'code': code})}"


def lan_address() -> str | None:
    """The box's own address on the office LAN: the first private/global IPv4 of a real interface."""
    import ifaddr

    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addr = ipaddress.IPv4Address(ip.ip)
                if not (addr.is_loopback or addr.is_link_local):
                    return str(addr)
    return None


def printer_rows(rows: Iterable[Mapping[str, Any]], cfg: Config,
                 enrolled: Callable[[str], bool] | None = None) -> tuple[PrinterRow, ...]:
    """The store's printers table as page rows; enrolled as the office chose (the daemon's choice, else [enroll])."""
    allows = enrolled or cfg.enroll.allows
    out = []
    for row in rows:
        serial = row.get("serial")
        model = " ".join(str(row[k]) for k in ("manufacturer", "model") if row.get(k)) or "?"
        out.append(PrinterRow(model=model, serial=serial, address=str(row.get("address") or "?"),
                              enrolled=bool(serial) and allows(str(serial))))
    return tuple(out)


def from_config(cfg: Config, store: Any, *, identity_dir: Path, state: BoxState | None = None,
                address: str | None = None, enrolled: Callable[[str], bool] | None = None) -> SetupInfo:
    """SetupInfo from the config and the store (``meterbox print-setup-page`` with no daemon).

    Unclaimed when the factory identity is there but enrollment has not given a site yet.
    """
    from meterbox.box.enroll import load_site
    from meterbox.box.pause import PauseSwitch

    box, url = claim_url(identity_dir)
    claimed = bool(cfg.uplink.host) or load_site(cfg.state_dir, identity_dir) is not None
    if state is None:
        state = BoxState(paused=PauseSwitch(cfg.state_dir, cfg.runtime_dir).read(), unclaimed=bool(url) and not claimed,
                         uploads_ok=store.last_upload() is not None and claimed)
    return SetupInfo(box_id=box or cfg.box_id, state=state, claim_url=url,
                     address=address or lan_address(), printers=printer_rows(store.printers(), cfg, enrolled),
                     last_upload=store.last_upload())
