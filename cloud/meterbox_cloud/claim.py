"""The claim page a key user opens from the label's QR code: confirm the box, then watch it connect.

Refusals are rate-limited per client address and per box id (5 refused tries in 10 minutes),
and an unknown box id gets the same answer as a wrong code, so ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from . import boxes
from .models import Box, ClaimAttempt

TRIES, WINDOW = 5, dt.timedelta(minutes=10)
NO_MATCH = ("This box id and claim code do not match a box waiting to be claimed. "
            "Check both on the box's label and try again.")
CLAIMED = ("This box is already claimed. If it has changed hands, ask your vendor to release it; "
           "then it can be claimed again.")
REVOKED = "This box has been withdrawn by the vendor. Please contact them."


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def wait_minutes(request: HttpRequest, box_id: str) -> int:
    """Minutes until this client may try again, or 0 when it may try now."""
    since = timezone.now() - WINDOW
    waits = []
    for field, value in (("address", client_address(request)), ("box_id", box_id)):
        recent = list(ClaimAttempt.objects.filter(**{field: value}, at__gte=since)
                      .order_by("-at").values_list("at", flat=True)[:TRIES])
        if len(recent) >= TRIES:
            waits.append((recent[-1] + WINDOW - timezone.now()).total_seconds())
    return math.ceil(max(waits) / 60) if waits else 0


def _serials(text: str) -> list[str]:
    return sorted({s for s in re.split(r"[\s,;]+", text) if s})


@require_http_methods(["GET", "POST"])
def claim(request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    form: dict[str, Any] = {
        "box": source.get("box", "").strip().upper()[:32], "code": source.get("code", "").strip()[:32],
        "email": source.get("email", "").strip()[:254], "site": source.get("site", "").strip()[:120],
        "enroll": source.get("enroll", "auto"), "serials": source.get("serials", "")[:4000],
    }
    if request.method == "GET":
        return render(request, "meterbox_cloud/claim.html", {"form": form})

    def refuse(message: str, status: int, count: bool = True) -> HttpResponse:
        if count:
            ClaimAttempt.objects.create(address=client_address(request), box_id=form["box"])
        return render(request, "meterbox_cloud/claim.html", {"form": form, "error": message}, status=status)

    minutes = wait_minutes(request, form["box"])
    if minutes:
        return refuse(f"Too many tries. Please try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                      429, count=False)
    try:
        validate_email(form["email"])
    except ValidationError:
        return refuse("Please enter your e-mail address, e.g. name@example.com.", 400, count=False)
    if not form["site"]:
        return refuse("Please name the site (the office where the box is), e.g. Main office.", 400, count=False)
    serials = _serials(form["serials"])
    if form["enroll"] == "list" and not serials:
        return refuse("Please list the serial numbers of the printers to report, or choose every printer.",
                      400, count=False)
    box = boxes.matching_box(form["box"], form["code"])
    if box is None:
        return refuse(NO_MATCH, 400)
    if box.revoked_at:
        return refuse(REVOKED, 403)
    try:
        boxes.claim(box, form["email"], form["site"], form["enroll"] != "list", serials)
    except boxes.BoxError:
        return refuse(CLAIMED, 409)
    claimed = request.session.get("claimed", [])
    request.session["claimed"] = [*claimed[-19:], box.pk]
    return redirect(f"/claim/status?box={box.pk}")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None


def box_state(box: Box) -> dict[str, Any]:
    """What the live page shows: the state and the seconds each step took from the claim."""
    return {"box": box.pk, "state": box.state, "site": box.site.name if box.site else None,
            "claimed_at": box.claimed_at.isoformat() if box.claimed_at else None,
            "enrolled_after": _seconds(box.claimed_at, box.enrolled_at),
            "first_reading_after": _seconds(box.claimed_at, box.first_reading_at)}


def _own_box(request: HttpRequest) -> Box | None:
    box_id = request.GET.get("box", "")
    if box_id not in request.session.get("claimed", []):
        return None
    return Box.objects.select_related("site").filter(pk=box_id).first()


@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    box = _own_box(request)
    if box is None:
        return redirect("/claim")
    return render(request, "meterbox_cloud/claimed.html", {"box": box, "state": box_state(box)})


@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    """Polled by the claimed page; only for boxes this browser claimed."""
    box = _own_box(request)
    if box is None:
        return JsonResponse({"error": "not a box claimed from this browser"}, status=404)
    return JsonResponse(box_state(box))
