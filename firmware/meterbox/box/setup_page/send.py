"""Print the setup page on a printer: IPP where it answers, else raw port 9100; PDF if it takes PDF, else PostScript."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from meterbox.box.setup_page import ipp, pjl
from meterbox.box.setup_page.render import FORMATS
from meterbox.errors import MeterboxError

log = logging.getLogger(__name__)

IPP_PORT, RAW_PORT = 631, 9100
IPP_PATH = "/ipp/print"
PJL_TIMEOUT = 2.0  # seconds for a printer to answer @PJL INFO CONFIG


class NoPrinterError(MeterboxError):
    """No printer took the setup page."""

    code = "no-printer"


@dataclass(frozen=True)
class Sent:
    """Where the page went and how: for the log line and the CLI's answer."""

    host: str
    port: int
    protocol: str   # "ipp" or "raw"
    fmt: str        # "pdf" or "ps"
    job: str = ""

    def __str__(self) -> str:
        how = f"IPP job {self.job}" if self.protocol == "ipp" else "raw port"
        return f"setup page ({self.fmt.upper()}) sent to {self.host}:{self.port} by {how}"


def choose(supported: Sequence[str]) -> str | None:
    """PDF if the printer takes PDF, PostScript if it takes that (or detects formats itself), else None."""
    kinds = {s.lower() for s in supported}
    if FORMATS["pdf"] in kinds or "PDF" in supported:
        return "pdf"
    if FORMATS["ps"] in kinds or "POSTSCRIPT" in supported or "application/octet-stream" in kinds:
        return "ps"
    return None


def send_page(host: str, port: int | None, render: Callable[[str], bytes], *, timeout: float = 10.0) -> Sent:
    """Print on HOST: PORT 631 is IPP, another port is raw; no port tries IPP 631, then raw 9100.

    Raises NoPrinterError (one sentence) when neither works.
    """
    tried: list[str] = []
    if port in (None, IPP_PORT):
        try:
            return send_ipp(host, IPP_PORT, IPP_PATH, render, timeout=timeout)
        except NoPrinterError as err:
            if port == IPP_PORT or not str(err).startswith("IPP "):
                raise
            tried.append(str(err).split(": ", 1)[0])
    raw = port or RAW_PORT
    try:
        languages = pjl.languages(host, raw, PJL_TIMEOUT)
        fmt = choose(languages or []) or "ps"
        document = render(fmt)
        data = pjl.wrap(document, "PDF" if fmt == "pdf" else "POSTSCRIPT") if languages is not None else document
        pjl.send(host, raw, data, timeout)
        return Sent(host, raw, "raw", fmt)
    except OSError as err:
        tried.append(f"raw {host}:{raw} ({_reason(err)})")
    raise _none(tried)


def send_ipp(host: str, port: int, path: str, render: Callable[[str], bytes], *, timeout: float = 10.0) -> Sent:
    """Print by IPP at ipp://HOST:PORT/PATH in the best format the printer lists."""
    try:
        supported = ipp.formats(host, port, path, timeout)
        fmt = choose(supported)
        if fmt is None:
            raise NoPrinterError(f"printer {host} takes neither PDF nor PostScript over IPP (it takes "
                                 f"{', '.join(supported) or 'nothing it names'}); print the page from a "
                                 "computer: meterbox print-setup-page --out setup.pdf")
        job = ipp.print_job(host, port, path, render(fmt), FORMATS[fmt], timeout)
    except (OSError, ipp.IppError) as err:
        raise NoPrinterError(f"IPP {host}:{port} ({_reason(err)}): no printer took the setup page there; "
                             "check that it is switched on, or write the page to a file with --out setup.pdf"
                             ) from None
    return Sent(host, port, "ipp", fmt, job)


def send_to_first(hosts: Sequence[tuple[str, int | None]], render: Callable[[str], bytes], *,
                  timeout: float = 10.0) -> Sent:
    """The first of HOSTS that takes the page; NoPrinterError if none does."""
    if not hosts:
        raise NoPrinterError("the box has found no printer to print the setup page on; name one with "
                             "--printer HOST[:PORT], or write it to a file with --out setup.pdf")
    errors = []
    for host, port in hosts:
        try:
            return send_page(host, port, render, timeout=timeout)
        except NoPrinterError as err:
            log.info("setup page: %s", err)
            errors.append(err)
    raise errors[0] if len(errors) == 1 else NoPrinterError(
        f"none of the {len(hosts)} printers found took the setup page; check that one is switched on, "
        "or name one with --printer HOST[:PORT], or write the page to a file with --out setup.pdf")


def _none(tried: list[str]) -> NoPrinterError:
    return NoPrinterError(f"no printer took the setup page: tried {'; '.join(tried)}; check that the printer "
                          "is switched on and reachable, name another with --printer HOST[:PORT], or write the "
                          "page to a file with --out setup.pdf")


def _reason(err: Exception) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, TimeoutError):
        return "no answer"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
