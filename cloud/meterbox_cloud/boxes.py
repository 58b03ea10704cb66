"""What happens to a box at the vendor: import from the factory, claim, release, revoke, enroll.

Views, the admin and the command line all call these, so each rule lives in one place.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from meterbox_factory.claimcode import normalize

from . import pki
from .errors import BoxError
from .models import BOX_ID_PATTERN, Box, Certificate, KeyUser, Site

log = logging.getLogger(__name__)
BOX_ID = re.compile(BOX_ID_PATTERN)


@dataclass(frozen=True)
class ImportSummary:
    added: int
    unchanged: int


def import_boxes(path: Path) -> ImportSummary:
    """Add the boxes of a factory ``vendor-import.json``; the same file twice changes nothing.

    A box id already known with a different key is refused (two factory batches drew the same
    id): nothing of the file is imported, and the message names the box to mint again.
    """
    try:
        records = json.loads(path.read_text())
        entries = [(r["box"], r["public_key"], r["claim_hash"]) for r in records]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BoxError(f"{path} is not a factory import file ({err}); "
                       f"use DIR/vendor-import.json from meterbox-factory mint") from None
    added = unchanged = 0
    with transaction.atomic():
        for box_id, public_key, claim_hash in entries:
            if not BOX_ID.match(box_id):
                raise BoxError(f"{path}: {box_id!r} is not a box id (MB- and 6 hex digits); nothing imported")
            try:
                serialization.load_pem_public_key(public_key.encode())
            except ValueError:
                raise BoxError(f"{path}: the public key of {box_id} is not PEM; nothing imported") from None
            existing = Box.objects.filter(pk=box_id).first()
            if existing is None:
                Box.objects.create(id=box_id, public_key=public_key, claim_hash=claim_hash)
                added += 1
            elif pki.spki_der(serialization.load_pem_public_key(existing.public_key.encode())) == \
                    pki.spki_der(serialization.load_pem_public_key(public_key.encode())):
                unchanged += 1
            else:
                raise BoxError(f"{path}: {box_id} is already registered with another key (an id drawn twice); "
                               f"nothing imported: mint a new identity for that box and import again")
    log.info("imported %d boxes from %s (%d already known)", added, path, unchanged)
    return ImportSummary(added, unchanged)


def matching_box(box_id: str, code: str) -> Box | None:
    """The box whose id and claim code match, or None (the same answer for an unknown id and a wrong code)."""
    box = Box.objects.filter(pk=box_id.strip().upper()).first()
    if box is None:
        check_password(normalize(code) or "x", "pbkdf2_sha256$100000$x$x")  # same time as a real check
        return None
    return box if check_password(normalize(code), box.claim_hash) else None


def claim(box: Box, email: str, site_name: str, enroll_auto: bool, serials: list[str]) -> Site:
    """Give an unclaimed box to a site (made for this key user if new); refused if claimed meanwhile."""
    with transaction.atomic():
        key_user, _ = KeyUser.objects.get_or_create(email=email.strip().lower())
        site, _ = Site.objects.get_or_create(key_user=key_user, name=site_name.strip())
        site.enroll_auto = enroll_auto
        site.enroll_serials = [] if enroll_auto else serials
        site.save(update_fields=["enroll_auto", "enroll_serials"])
        # One conditional UPDATE: of two claims racing, exactly one changes the row.
        won = Box.objects.filter(pk=box.pk, site__isnull=True, revoked_at__isnull=True).update(
            site=site, claimed_at=timezone.now(), enrolled_at=None, first_reading_at=None)
        if not won:
            raise BoxError("this box is already claimed")
    log.info("box %s claimed for site %r by %s", box.pk, site.name, key_user.email)
    return site


def release(box_id: str) -> None:
    """Vendor action: the box leaves its site and may be claimed again (e.g. it changed hands)."""
    if not Box.objects.filter(pk=box_id).update(site=None, claimed_at=None, enrolled_at=None, first_reading_at=None):
        raise BoxError(f"no box {box_id} at the vendor; check the id on its label")
    log.info("box %s released: it can be claimed again", box_id)


def revoke(box_id: str) -> Path:
    """Vendor action: the box is refused by the enrollment API and, via the CRL, by the broker."""
    with transaction.atomic():
        if not Box.objects.filter(pk=box_id).update(revoked_at=timezone.now()):
            raise BoxError(f"no box {box_id} at the vendor; check the id on its label")
    path = write_crl()
    log.warning("box %s revoked; CRL rewritten at %s (restart the broker so that it reads it)", box_id, path)
    return path


def write_crl() -> Path:
    """Rewrite the CRL from the database: every certificate ever issued to a revoked box."""
    revoked = [(int(serial, 16), when) for serial, when in
               Certificate.objects.filter(box__revoked_at__isnull=False).values_list("serial", "box__revoked_at")]
    return pki.write_crl(pki.authority(), revoked)


def enrollment_config(box: Box) -> dict[str, Any]:
    """The site configuration a claimed box receives with its certificate."""
    conf = settings.METERBOX
    site = box.site
    assert site is not None
    return {
        "uplink": {"host": conf["BROKER_HOST"], "port": conf["BROKER_PORT"],
                   "websockets_port": conf["BROKER_WS_PORT"], "websockets_path": conf["BROKER_WS_PATH"]},
        "enroll": {"auto": site.enroll_auto, "serials": list(site.enroll_serials)},
        "poll": {"interval": site.poll_interval or conf["POLL_INTERVAL"]},
    }


def issue_certificate(box: Box, csr_pem: str) -> tuple[pki.Issued, dt.datetime]:
    """Sign the box's CSR, record the certificate and the first enrollment; returns it and renew_after."""
    issued = pki.sign_box_csr(pki.authority(), csr_pem, box.pk, box.public_key, settings.METERBOX["CERT_DAYS"])
    now = timezone.now()
    with transaction.atomic():
        Certificate.objects.create(serial=f"{issued.serial:x}", box=box,
                                   not_before=issued.not_before, not_after=issued.not_after)
        Box.objects.filter(pk=box.pk, enrolled_at__isnull=True).update(enrolled_at=now)
    renew_after = issued.not_before + (issued.not_after - issued.not_before) * 2 / 3
    return issued, renew_after


def record_nonce(box_id: str, nonce: str) -> bool:
    """Store a signature nonce; False when it was already used (a replayed request)."""
    from .models import SignatureNonce

    try:
        with transaction.atomic():
            SignatureNonce.objects.create(box_id=box_id, nonce=nonce)
    except IntegrityError:
        return False
    # Nonces older than the signature window can never be replayed: drop them now and then.
    if random.random() < 0.02:
        SignatureNonce.objects.filter(created_at__lt=timezone.now() - dt.timedelta(minutes=15)).delete()
    return True
