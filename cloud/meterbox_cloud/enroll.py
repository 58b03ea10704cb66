"""``POST /api/v1/enroll``: a box asks for its site configuration and a client certificate.

Request: JSON ``{"box", "csr", "firmware"}``, signed (see signatures.py). Answers: 401 for a
refused signature or a replay, 403 for a revoked box, 400 for a bad body or CSR, 202 with
``Retry-After`` while the box is not claimed, 200 with configuration and certificate once it
is. The same call renews the certificate later.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import boxes, pki
from .models import Box
from .signatures import SignatureRefused, verify

log = logging.getLogger(__name__)


def _error(status: int, message: str, box: str = "?") -> JsonResponse:
    log.warning("enrollment from %s refused (%d): %s", box, status, message)
    return JsonResponse({"error": message}, status=status)


@csrf_exempt  # authenticated by the box's signature, not by a browser session
@require_POST
def enroll(request: HttpRequest) -> JsonResponse:
    body = request.body
    try:
        box, nonce = verify(request, body)
    except SignatureRefused as err:
        return _error(401, str(err))
    try:
        data: Any = json.loads(body)
        box_id, csr, firmware = data["box"], data["csr"], data["firmware"]
        if not all(isinstance(v, str) for v in (box_id, csr, firmware)):
            raise TypeError("box, csr and firmware must be strings")
    except (ValueError, KeyError, TypeError) as err:
        return _error(400, f'the body must be JSON {{"box", "csr", "firmware"}} ({err})', box.pk)
    if box_id != box.pk:
        return _error(401, f"the body names {box_id} but the request is signed as {box.pk}", box.pk)
    if not boxes.record_nonce(box.pk, nonce):
        return _error(401, "this request was already received (same nonce): a replay; sign every request "
                           "with a fresh nonce", box.pk)
    if box.revoked_at:
        return _error(403, f"box {box.pk} is revoked by the vendor; it can no longer enroll or send "
                           f"readings (ask the vendor)", box.pk)
    Box.objects.filter(pk=box.pk).update(last_enroll_at=timezone.now(), firmware=firmware[:32])
    box.refresh_from_db()
    if box.site_id is None:
        retry = settings.METERBOX["RETRY_AFTER"]
        log.info("box %s asked to enroll; not claimed yet", box.pk)
        response = JsonResponse({"state": "waiting", "message": f"box {box.pk} is not claimed yet: scan the "
                                 f"QR code on its label and confirm on the claim page"}, status=202)
        response["Retry-After"] = str(retry)
        return response
    try:
        issued, renew_after = boxes.issue_certificate(box, csr)
    except pki.CsrError as err:
        return _error(400, str(err), box.pk)
    box.refresh_from_db()
    assert box.site is not None
    log.info("box %s enrolled for site %r: certificate %x valid until %s", box.pk, box.site.name,
             issued.serial, issued.not_after.isoformat(timespec="seconds"))
    return JsonResponse({
        "state": "enrolled",
        "box": box.pk,
        "site": {"name": box.site.name},
        "config": boxes.enrollment_config(box),
        "certificate": issued.pem,
        "ca": pki.authority().cert_path.read_text(),
        "not_after": issued.not_after.isoformat(timespec="seconds"),
        "renew_after": renew_after.isoformat(timespec="seconds"),
    })
