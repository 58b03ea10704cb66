"""Django admin for the vendor's staff, with the box actions "release" and "revoke"."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import boxes
from .models import Announcement, Box, Certificate, Heartbeat, KeyUser, Printer, Reading, Rejection, Site


@admin.action(description="Release: the box may be claimed again")
def release(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Box]) -> None:
    for box in queryset:
        boxes.release(box.pk)
    messages.info(request, f"released {queryset.count()} box(es)")


@admin.action(description="Revoke: refuse enrollment and the broker connection (CRL)")
def revoke(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Box]) -> None:
    path = None
    for box in queryset:
        path = boxes.revoke(box.pk)
    messages.warning(request, f"revoked {queryset.count()} box(es); CRL written to {path}: "
                              f"restart the broker so that it reads it")


@admin.register(Box)
class BoxAdmin(admin.ModelAdmin):
    list_display = ("id", "site", "state", "claimed_at", "enrolled_at", "first_reading_at", "last_heartbeat",
                    "firmware", "revoked_at")
    list_filter = ("revoked_at", "site")
    search_fields = ("id",)
    readonly_fields = ("public_key", "claim_hash", "imported_at")
    actions = [release, revoke]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "key_user", "enroll_auto", "created_at")
    search_fields = ("name", "key_user__email")


@admin.register(Printer)
class PrinterAdmin(admin.ModelAdmin):
    list_display = ("serial", "manufacturer", "model", "box", "first_seen")
    search_fields = ("serial", "model")


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = ("id", "box", "printer", "read_at", "clock", "received_at")
    list_filter = ("clock",)
    search_fields = ("id", "printer__serial")


admin.site.register(KeyUser)
admin.site.register(Certificate, list_display=("serial", "box", "not_after", "issued_at"))
admin.site.register(Announcement, list_display=("id", "box", "serial", "manufacturer", "model", "received_at"))
admin.site.register(Heartbeat, list_display=("id", "box", "firmware", "backlog", "received_at"))
admin.site.register(Rejection, list_display=("received_at", "topic", "reason"))
