"""Storing a batch of box messages in one transaction: readings, device announcements, heartbeats,
and the rejections, with every message id stored at most once (primary keys, INSERT ... ON CONFLICT
DO NOTHING), whichever worker receives a redelivery.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from .contract import ContractError, check
from .models import Announcement, Box, Heartbeat, Printer, Reading, Rejection

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """What one or many batches did; the worker logs these."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0

    def add(self, other: "Counts") -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Books:
    """The database side of one ingest worker; keeps small caches of known boxes and printers."""

    def __init__(self) -> None:
        self.known_boxes: set[str] = set()
        self.printer_ids: dict[tuple[str, str], int] = {}

    def store(self, messages: Iterable[tuple[str, bytes]]) -> Counts:
        """Validate and store ``(topic, payload)`` pairs in one transaction; raises on a database error."""
        now = timezone.now()
        counts = Counts()
        rejections: list[Rejection] = []
        accepted: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for topic, payload in messages:
            try:
                box, kind, body = check(topic, payload)
            except ContractError as err:
                rejections.append(self._rejection(now, topic, payload, str(err)))
                continue
            if body["id"] in accepted:
                counts.duplicates += 1
                continue
            accepted[body["id"]] = (box, kind, body)
        self._check_boxes(accepted, rejections, now)
        new_printers: dict[tuple[str, str], int] = {}
        with transaction.atomic():
            by_kind = {kind: {i: v for i, v in accepted.items() if v[1] == kind}
                       for kind in ("readings", "devices", "status")}
            fresh = {kind: self._new_ids(model, by_kind[kind]) for kind, model in
                     (("readings", Reading), ("devices", Announcement), ("status", Heartbeat))}
            counts.duplicates += sum(len(by_kind[k]) - len(fresh[k]) for k in by_kind)
            self._printers({(b, body["serial"]): body for i, (b, k, body) in accepted.items()
                            if k in ("readings", "devices") and i in fresh[k]}, new_printers)
            printer_ids = {**self.printer_ids, **new_printers}
            Reading.objects.bulk_create([
                Reading(id=i, box_id=b, printer_id=printer_ids[(b, body["serial"])],
                        read_at=_parse_time(body["read_at"]), clock=body["clock"], received_at=now,
                        meters=body["meters"], supplies=body["supplies"])
                for i, (b, _, body) in by_kind["readings"].items() if i in fresh["readings"]], ignore_conflicts=True)
            self._announcements(by_kind["devices"], fresh["devices"], now)
            self._heartbeats(by_kind["status"], fresh["status"], now)
            Rejection.objects.bulk_create(rejections)
            reporting = {b for i, (b, _, _) in by_kind["readings"].items() if i in fresh["readings"]}
            if reporting:
                Box.objects.filter(pk__in=reporting, first_reading_at__isnull=True,
                                   claimed_at__isnull=False).update(first_reading_at=now)
            counts.stored = sum(len(f) for f in fresh.values())
        self.printer_ids.update(new_printers)  # only once committed
        counts.rejected = len(rejections)
        return counts

    @staticmethod
    def _rejection(now: dt.datetime, topic: str, payload: bytes, reason: str) -> Rejection:
        log.warning("rejected a message on %s: %s", topic[:200], reason)
        return Rejection(received_at=now, topic=topic[:200], reason=reason[:300],
                         payload=payload[:1000].decode("utf-8", errors="replace"))

    def _check_boxes(self, accepted: dict[str, tuple[str, str, dict[str, Any]]],
                     rejections: list[Rejection], now: dt.datetime) -> None:
        """A message from a box the vendor never imported (it cannot be billed to anyone) or has revoked
        (still connected since before the broker read the new CRL) is rejected."""
        boxes = {b for b, _, _ in accepted.values()}
        unknown = boxes - self.known_boxes
        if unknown:
            self.known_boxes |= set(Box.objects.filter(pk__in=unknown).values_list("pk", flat=True))
        revoked = set(Box.objects.filter(pk__in=boxes, revoked_at__isnull=False).values_list("pk", flat=True)) \
            if boxes else set()
        for message_id, (box, kind, body) in list(accepted.items()):
            if box not in self.known_boxes or box in revoked:
                del accepted[message_id]
                why = "is revoked" if box in revoked else "is not registered at the vendor"
                rejections.append(self._rejection(now, f"meterbox/v1/{box}/{kind}", json.dumps(body).encode(),
                                                  f"box {box} {why}"))

    @staticmethod
    def _new_ids(model: type[Model], messages: dict[str, Any]) -> set[str]:
        """Ids of this batch not stored before (a redelivery after a worker died is stored already)."""
        if not messages:
            return set()
        known = set(model.objects.filter(pk__in=list(messages)).values_list("pk", flat=True))  # type: ignore[attr-defined]
        return set(messages) - known

    def _printers(self, wanted: dict[tuple[str, str], dict[str, Any]], new: dict[tuple[str, str], int]) -> None:
        """Make sure a Printer row exists for every (box, serial) of the batch."""
        missing = [key for key in wanted if key not in self.printer_ids]
        if not missing:
            return
        Printer.objects.bulk_create([Printer(box_id=b, serial=s) for b, s in missing], ignore_conflicts=True)
        boxes = {b for b, _ in missing}
        serials = {s for _, s in missing}
        for pk, b, s in Printer.objects.filter(box_id__in=boxes, serial__in=serials).values_list("pk", "box_id",
                                                                                                  "serial"):
            new[(b, s)] = pk

    @staticmethod
    def _announcements(messages: dict[str, tuple[str, str, dict[str, Any]]], fresh: set[str],
                       now: dt.datetime) -> None:
        rows = [Announcement(id=i, box_id=b, serial=body["serial"], manufacturer=body["manufacturer"] or "",
                             model=body["model"] or "", received_at=now)
                for i, (b, _, body) in messages.items() if i in fresh]
        Announcement.objects.bulk_create(rows, ignore_conflicts=True)
        for row in rows:
            Printer.objects.filter(box_id=row.box_id, serial=row.serial).update(
                manufacturer=row.manufacturer, model=row.model)

    @staticmethod
    def _heartbeats(messages: dict[str, tuple[str, str, dict[str, Any]]], fresh: set[str], now: dt.datetime) -> None:
        latest: dict[str, dict[str, Any]] = {}
        rows = []
        for i, (b, _, body) in messages.items():
            if i not in fresh:
                continue
            latest[b] = body
            rows.append(Heartbeat(id=i, box_id=b, received_at=now, firmware=body["firmware"], clock=body["clock"],
                                  backlog=body["backlog"], printers_seen=body["printers_seen"],
                                  printers_reported=body["printers_reported"]))
        Heartbeat.objects.bulk_create(rows, ignore_conflicts=True)
        for b, body in latest.items():
            Box.objects.filter(pk=b).update(last_heartbeat=now, firmware=body["firmware"], health={
                k: body[k] for k in ("clock", "backlog", "printers_seen", "printers_reported")})
