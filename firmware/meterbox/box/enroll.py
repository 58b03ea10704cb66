"""Enrollment: from the factory identity to a site configuration and a client certificate.

A box fresh from the factory knows only who it is (identity.json, box.key) and its vendor.
Until a person claims it with the QR code on its label, the vendor answers "waiting"
(202, Retry-After) and the box asks again as told. Once claimed, the answer carries the
site configuration (broker, the office's enrollment choice, poll interval) and a client
certificate signed from the box's own key. They are written atomically to
`<state_dir>/site/` (site.json last: it is the commit mark) and the uplink starts. At two
thirds of the certificate's life the same call renews it; a renewed file is used at the
next connection. While paused, no enrollment call is made, not even a DNS look-up.

The one owner of the site files; `meterbox enroll --status` reads them and enrollment.json
(where it stands, since when, the last answer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from meterbox.background import in_thread
from meterbox.config import EnrollConfig, UplinkConfig, parse_duration
from meterbox.logs import Once
from meterbox.printers.reading import utc_iso

if TYPE_CHECKING:  # requests, cryptography and the signer cost ~25 MiB: loaded only to enroll
    from meterbox.box.enroll_client import EnrollClient, EnrollResult

log = logging.getLogger(__name__)

SITE = "site"
RETRY_MAX = 300.0     # the longest wait between two attempts when the vendor cannot be reached
REVOKED_RETRY = 3600.0
RECHECK = 3600.0      # the longest single wait: the renewal date is recomputed at least this often
RENEW_FLOOR = 60.0    # after an answer, at least this long before the next call


@dataclass(frozen=True)
class Site:
    """What the vendor's enrollment gave this box."""

    name: str
    uplink: UplinkConfig
    enroll: EnrollConfig | None
    poll_interval: float | None
    not_after: float | None
    renew_after: float | None


def site_dir(state_dir: Path) -> Path:
    return state_dir / SITE


def load_site(state_dir: Path, identity_dir: Path) -> Site | None:
    """The site written by an earlier enrollment, or None (not enrolled yet, or files unreadable)."""
    folder = site_dir(state_dir)
    try:
        data = json.loads((folder / "site.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("site configuration %s cannot be read (%s); the box enrolls again", folder / "site.json", err)
        return None
    return _site(data, folder, identity_dir)


def _site(data: dict[str, Any], folder: Path, identity_dir: Path) -> Site:
    config = data.get("config", {})
    up = config.get("uplink", {})
    uplink = UplinkConfig(host=str(up["host"]), port=int(up.get("port", 8883)),
                          websockets_port=int(up.get("websockets_port", 443)),
                          websockets_path=str(up.get("websockets_path", "/mqtt")),
                          ca_file=folder / "ca.crt", cert_file=folder / "client.crt",
                          key_file=identity_dir / "box.key")
    choice = config.get("enroll")
    enroll = EnrollConfig(auto=bool(choice.get("auto", True)), serials=tuple(choice.get("serials", ()))) \
        if isinstance(choice, dict) else None
    interval = config.get("poll", {}).get("interval")
    return Site(name=str(data.get("site", {}).get("name", "")), uplink=uplink, enroll=enroll,
                poll_interval=parse_duration(interval) if isinstance(interval, str) else None,
                not_after=data.get("not_after"), renew_after=data.get("renew_after"))


def _stamp(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value else None


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write PATH so a power cut leaves the old file or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Enrollment:
    """Enrolls the box, renews its certificate, and tells the daemon when a site is there."""

    def __init__(self, identity_dir: Path, state_dir: Path, *, ca_file: Path | None,
                 paused: Callable[[], bool], on_site: Callable[[Site], None],
                 client: Callable[[], EnrollClient] | None = None) -> None:
        self.identity_dir = identity_dir
        self.folder = site_dir(state_dir)
        self.ca_file = ca_file
        self.paused = paused
        self.on_site = on_site
        self._client = client
        self.site = load_site(state_dir, identity_dir)
        self._once = Once(log)
        self._resume = asyncio.Event()
        self.error_code: str | None = None    # the code of the last call's error, for the LEDs

    # --- where it stands, for status and the LEDs ------------------------------------
    @property
    def claimed(self) -> bool:
        return self.site is not None

    def note(self, state: str, message: str) -> None:
        """Keep where enrollment stands in enrollment.json (written on change only)."""
        path = self.folder / "enrollment.json"
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("state") == state and old.get("message") == message:
            return
        since = old.get("since") if old.get("state") == state else utc_iso(time.time())
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"state": state, "since": since, "message": message}).encode())
        except OSError as err:
            log.debug("enrollment state not written: %s", err)

    def resumed(self) -> None:
        """The pause switch went off: try at once."""
        self._resume.set()

    # --- the task ----------------------------------------------------------------------
    async def run(self) -> None:
        from meterbox.box.enroll_client import EnrollError, EnrollRevoked

        delay = 1.0
        while True:
            wait = self._due()
            if wait > 0:
                # In steps of at most an hour: a clock that syncs meanwhile moves the renewal date.
                await self._sleep(min(wait, RECHECK))
                continue
            if self.paused():
                self.note("paused", "uploads are paused: no enrollment call is made until they are resumed")
                await self._sleep(RECHECK)
                continue
            try:
                result = await in_thread(self._call, name="enroll")
            except EnrollRevoked as err:
                self.error_code = err.code
                self.note("revoked", str(err))       # first: `meterbox enroll` says what the log says
                self._once.say("enroll", f"enrollment: {err}", logging.ERROR)
                await self._sleep(REVOKED_RETRY)
                continue
            except EnrollError as err:
                self.error_code = err.code
                self.note("error", str(err))
                self._once.say("enroll", f"enrollment: {err}; trying again", logging.WARNING)
                await self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = 1.0
            self.error_code = None
            if result.state == "waiting":
                self._waiting(result)
                await self._sleep(result.retry_after or 5.0)
            else:
                self._enrolled(result)
                await self._sleep(RENEW_FLOOR)   # a renewal date already past must not become a busy loop

    def _due(self) -> float:
        """Seconds until the next call is due: now while unclaimed, else at the renewal time."""
        if self.site is None or self.site.renew_after is None:
            return 0.0
        return max(self.site.renew_after - time.time(), 0.0)

    async def _sleep(self, seconds: float) -> None:
        self._resume.clear()
        try:
            await asyncio.wait_for(self._resume.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _call(self) -> EnrollResult:
        """One signed call (on a thread of its own: requests blocks)."""
        from meterbox.box.enroll_client import EnrollClient, make_key_csr

        client = self._client() if self._client else EnrollClient(self.identity_dir, ca_file=self.ca_file)
        return client.enroll(make_key_csr(self.identity_dir))

    def _waiting(self, result: EnrollResult) -> None:
        if self.site is None:
            self.note("waiting", "waiting to be claimed: scan the QR code on the box's label with a phone")
            self._once.say("enroll", "enrollment: waiting to be claimed: scan the QR code on the box's label "
                                     "with a phone and confirm", logging.INFO)
        else:  # a renewal the vendor holds back (released box): keep the current certificate
            self.note("waiting", f"renewal held back by the vendor: {result.message}")

    def _enrolled(self, result: EnrollResult) -> None:
        data = {"site": result.site, "config": result.config, "not_after": _stamp(result.not_after),
                "renew_after": _stamp(result.renew_after), "enrolled_at": time.time()}
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.folder / "ca.crt", result.ca.encode(), 0o644)
            write_atomic(self.folder / "client.crt", result.certificate.encode(), 0o644)
            write_atomic(self.folder / "site.json", json.dumps(data).encode())   # last: the commit mark
            _fsync_dir(self.folder)
        except OSError as err:
            self._once.say("enroll", f"enrollment: the vendor sent the site configuration but {self.folder} "
                                     f"cannot be written ({err.strerror or err}); run `meterbox doctor`",
                           logging.ERROR)
            return
        renewal = self.site is not None
        self.site = _site(data, self.folder, self.identity_dir)
        self._once.clear("enroll")
        until = utc_iso(self.site.not_after) if self.site.not_after else "?"
        self.note("enrolled", f"site {self.site.name!r}; certificate valid until {until}")
        if renewal:
            log.info("enrollment: client certificate renewed, valid until %s", until,
                     extra={"METERBOX_EVENT": "certificate-renewed"})
        else:
            log.info("enrollment: claimed for site %r; client certificate valid until %s; connecting to %s",
                     self.site.name, until, self.site.uplink.host, extra={"METERBOX_EVENT": "enrolled"})
        self.on_site(self.site)
