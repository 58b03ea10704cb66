"""What the store knows of each printer, as the pollers ask it: read and written on the store's thread."""

from __future__ import annotations

from typing import Any

from meterbox.outbox.store import Store
from meterbox.outbox.worker import StoreWorker


class StoreHistory:
    """The pollers' view of the store (printers.poller.History)."""

    def __init__(self, db: StoreWorker) -> None:
        self.db = db

    async def meter_state(self, serial: str) -> dict[str, Any] | None:
        return await self.db.call(Store.meter_state, serial)

    async def polled(self, address: str, serial: str | None, error: str | None) -> None:
        await self.db.call(Store.printer_polled, address, serial, error)

    async def forget(self, address: str) -> None:
        await self.db.call(Store.forget_address, address)
