"""What `meterbox status` and `meterbox enroll` say: from the store, and from the running daemon.

The store is read read-only (it may be on a card that has turned read-only); the daemon's
live status file says what only it knows (connected? a store kept in memory?).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from meterbox.config import Config
from meterbox.printers.reading import utc_iso

if TYPE_CHECKING:
    from meterbox.outbox.store import Store


def summary(cfg: Config, store: Store | None) -> dict[str, Any]:
    """What `meterbox status --json` prints: the store's account, and the running daemon's where it knows better."""
    from meterbox.box import live
    from meterbox.box.pause import PauseSwitch

    running = live.read(cfg.runtime_dir)
    pause = PauseSwitch(cfg.state_dir, cfg.runtime_dir)
    out = {"daemon": "running" if running else "not running", "paused": pause.paused,
           "paused_since": pause.since(), "backlog": store.backlog() if store else 0,
           "last_upload": when(store.last_upload() if store else None),
           "last_error": store.state("last_error") if store else None,
           "printers": store.printers() if store else [],
           "meters_held": json.loads((store.state("meters_held") if store else None) or "[]"),
           "waiting_for_clock": store.held() if store else 0, "live": running,
           "refused": store.refused() if store else [],
           "enrollment": enrollment(cfg)}
    if running and running.get("uplink_error") is not None:
        out["last_error"] = running["uplink_error"]
    if running and "meters_held" in running:   # the daemon's own view: its store may be in memory, not this file
        out["meters_held"] = running["meters_held"]
    return out


def enrollment(cfg: Config) -> dict[str, Any] | None:
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
                       "certificate_until": when(site.not_after), "renew_after": when(site.renew_after)}
    return out


def status_text(cfg: Config, summary: dict[str, Any], have_store: bool) -> str:
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
        lines.append(f"held back: printer {shown(held['serial'])} {held['meter']}: {held['reason']}")
    for refused in summary["refused"]:
        reason = refused["reason"] or ""
        why = reason if reason.startswith("not enrolled") else f"outside the wire contract ({reason})"
        lines.append(f"not sent: printer {shown(refused['serial'])}: {refused['count']} {refused['kind']} "
                     f"message(s) kept here: {shown(why)}")
    printers = summary["printers"]
    configured = len(cfg.printers)
    count = f"{len(printers)} printer{'' if len(printers) == 1 else 's'} polled"
    if configured and len(printers) < configured:
        count += f" ({configured} configured; the others not polled yet)"
    lines.append(count)
    for p in printers:
        state = "ok" if not p["last_error"] else p["last_error"]
        name = shown(f"{p['manufacturer'] or ''} {p['model'] or ''}".strip()) or "?"
        lines.append(f"  {p['address']:<22} {shown(p['serial']) or '-':<16} {name:<32} "
                     f"last poll {when(p['last_poll']) or 'never'}: {shown(state)}")
    return "\n".join(lines)


def shown(text: str | None, limit: int = 80) -> str:
    """A printer's text on a terminal: no escapes or control characters, long ones cut."""
    from meterbox.outbox.wire import printable

    out = printable(text) or ""
    return out if len(out) <= limit else out[:limit - 1] + "…"


def when(value: Any) -> str | None:
    return utc_iso(float(value)) if value else None
