"""The vendor's books: boxes and who claimed them, sites, printers, readings, heartbeats.

Message ids (ULIDs from the box) are primary keys of the rows they produced, so a redelivered
message is refused by the database itself, whichever ingest worker receives it.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

BOX_ID_PATTERN = r"^MB-[0-9A-F]{6}$"


class KeyUser(models.Model):
    """The office's contact who claimed a box; identified by e-mail."""

    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.email


class Site(models.Model):
    """An office. Holds the enrollment choice that its boxes receive (and the office page may change)."""

    name = models.CharField(max_length=120)
    key_user = models.ForeignKey(KeyUser, on_delete=models.PROTECT, related_name="sites")
    enroll_auto = models.BooleanField(default=True, help_text="report every printer the box finds")
    enroll_serials = models.JSONField(default=list, blank=True,
                                      help_text="with auto off: the only serials reported")
    poll_interval = models.CharField(max_length=16, default="", blank=True,
                                     help_text='e.g. "15m"; empty: the service default')
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_user", "name"], name="one_site_name_per_key_user")]

    def __str__(self) -> str:
        return self.name


class Box(models.Model):
    """One meterbox: its public key and claim-code hash from the factory, then its life at the vendor."""

    id = models.CharField(primary_key=True, max_length=9)
    public_key = models.TextField(help_text="SubjectPublicKeyInfo PEM from the factory")
    claim_hash = models.CharField(max_length=200)
    imported_at = models.DateTimeField(default=timezone.now)
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="boxes")
    claimed_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True, help_text="first certificate since the claim")
    first_reading_at = models.DateTimeField(null=True, blank=True, help_text="first reading since the claim")
    last_enroll_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    firmware = models.CharField(max_length=32, blank=True, default="")
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    health = models.JSONField(default=dict, blank=True, help_text="the last status heartbeat")

    class Meta:
        verbose_name_plural = "boxes"

    def __str__(self) -> str:
        return self.id

    @property
    def state(self) -> str:
        """revoked, unclaimed, waiting (claimed, not yet enrolled), enrolled, or reporting."""
        if self.revoked_at:
            return "revoked"
        if not self.site_id:
            return "unclaimed"
        if not self.enrolled_at:
            return "waiting"
        return "reporting" if self.first_reading_at else "enrolled"


class Certificate(models.Model):
    """A client certificate issued to a box; the CRL lists those of revoked boxes."""

    serial = models.CharField(max_length=64, unique=True, help_text="hex")
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="certificates")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    issued_at = models.DateTimeField(default=timezone.now)


class SignatureNonce(models.Model):
    """Nonces of accepted enrollment requests within the signature window: a replay hits the constraint."""

    box_id = models.CharField(max_length=9)
    nonce = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["box_id", "nonce"], name="nonce_used_once")]


class ClaimAttempt(models.Model):
    """A refused claim, for the rate limit per client address and per box id."""

    address = models.CharField(max_length=64)
    box_id = models.CharField(max_length=32)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["address", "at"]), models.Index(fields=["box_id", "at"])]


class Printer(models.Model):
    """A printer behind a box, known by its serial number (never its address)."""

    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="printers")
    serial = models.CharField(max_length=64)
    manufacturer = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=128, blank=True, default="")
    first_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["box", "serial"], name="one_printer_per_serial_per_box")]

    def __str__(self) -> str:
        return f"{self.serial} ({self.manufacturer} {self.model})".strip()


class Reading(models.Model):
    """One reading as the box sent it: the billing meters and supplies levels of one printer at read_at."""

    id = models.CharField(primary_key=True, max_length=26, help_text="the box's message id")
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="readings")
    printer = models.ForeignKey(Printer, on_delete=models.CASCADE, related_name="readings")
    read_at = models.DateTimeField()
    clock = models.CharField(max_length=10)
    received_at = models.DateTimeField()
    meters = models.JSONField(help_text='[{"name", "value", "unit"}]')
    supplies = models.JSONField(help_text='[{"name", "level", "unit", "state"}]')

    class Meta:
        indexes = [models.Index(fields=["printer", "-read_at"], name="latest_reading_of_printer")]


class Announcement(models.Model):
    """A device message: which printer (serial, manufacturer, model) a box reports."""

    id = models.CharField(primary_key=True, max_length=26)
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="announcements")
    serial = models.CharField(max_length=64)
    manufacturer = models.CharField(max_length=64, blank=True, default="")
    model = models.CharField(max_length=128, blank=True, default="")
    received_at = models.DateTimeField()


class Heartbeat(models.Model):
    """A status message: the box's health (firmware, clock, backlog, printer counts)."""

    id = models.CharField(primary_key=True, max_length=26)
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="heartbeats")
    received_at = models.DateTimeField()
    firmware = models.CharField(max_length=32)
    clock = models.CharField(max_length=10)
    backlog = models.PositiveIntegerField()
    printers_seen = models.PositiveIntegerField()
    printers_reported = models.PositiveIntegerField()


class Rejection(models.Model):
    """A message the ingest refused (outside the wire contract, wrong box, unknown box); counted, never billed."""

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    topic = models.CharField(max_length=200)
    reason = models.CharField(max_length=300)
    payload = models.TextField(blank=True, help_text="the first 1000 characters")
