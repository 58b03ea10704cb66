"""Pages for the vendor's staff (login required): sites -> boxes -> printers with their latest reading."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Box, Printer, Reading, Rejection, Site


@login_required
def sites(request: HttpRequest) -> HttpResponse:
    boxes = Box.objects.annotate(printer_count=Count("printers")).order_by("id")
    return render(request, "meterbox_cloud/staff_sites.html", {
        "sites": Site.objects.select_related("key_user").prefetch_related(Prefetch("boxes", queryset=boxes))
                 .order_by("name"),
        "unclaimed": boxes.filter(site__isnull=True),
        "rejections": Rejection.objects.count(),
    })


@login_required
def box(request: HttpRequest, box_id: str) -> HttpResponse:
    the_box = get_object_or_404(Box.objects.select_related("site", "site__key_user"), pk=box_id)
    latest = Reading.objects.filter(printer=OuterRef("pk")).order_by("-read_at")
    printers = (Printer.objects.filter(box=the_box).order_by("serial")
                .annotate(latest_id=Subquery(latest.values("id")[:1])))
    readings = Reading.objects.in_bulk([p.latest_id for p in printers if p.latest_id])
    rows = [(p, readings.get(p.latest_id)) for p in printers]
    return render(request, "meterbox_cloud/staff_box.html", {"box": the_box, "rows": rows})
