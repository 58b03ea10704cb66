"""Printers that announce themselves over mDNS (Bonjour): the only importer of zeroconf.

mDNS finds printers the subnet sweep cannot reach: outside the swept /22, or behind
an mDNS reflector. It only names addresses; the sweep then checks each one over
SNMP like any other, so a printer is still known by its serial.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

#: IPP, IPP over TLS, raw port 9100 (HP JetDirect) and LPD: what printers announce.
SERVICE_TYPES = ("_ipp._tcp.local.", "_ipps._tcp.local.", "_pdl-datastream._tcp.local.",
                 "_printer._tcp.local.")
RESOLVE_MS = 3000


class MdnsBrowser:
    """Browses the printer service types and hands each announced IPv4 address to ON_ADDRESS."""

    def __init__(self, on_address: Callable[[str, str], None]) -> None:
        self.on_address = on_address        # (address, service name)
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.seen: set[str] = set()

    async def start(self) -> bool:
        """Start browsing; False (and one warning) when this network cannot do multicast."""
        try:
            self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
            self._browser = AsyncServiceBrowser(self._zc.zeroconf, list(SERVICE_TYPES),
                                                handlers=[self._changed])
        except OSError as err:
            log.warning("mDNS browsing is not possible here (%s); printers are still found by "
                        "the SNMP sweep", err)
            await self.close()
            return False
        return True

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str,
                 state_change: ServiceStateChange) -> None:
        """zeroconf calls this on its loop for every service that comes or goes."""
        if state_change is ServiceStateChange.Removed:
            return
        task = asyncio.ensure_future(self._resolve(service_type, name))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        """Ask for the service's addresses; a printer that does not answer is skipped."""
        if self._zc is None:
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_MS):
            log.debug("mDNS: %s did not say its address", name)
            return
        for address in info.parsed_addresses(IPVersion.V4Only):
            log.debug("mDNS: %s at %s", name, address)
            self.seen.add(address)
            self.on_address(address, name)

    async def close(self) -> None:
        """Stop browsing and release the multicast sockets."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            await self._zc.async_close()
            self._zc = None
