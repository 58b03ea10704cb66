"""The Django app: the vendor's books of boxes, sites, printers and readings."""

from django.apps import AppConfig


class MeterboxCloudConfig(AppConfig):
    name = "meterbox_cloud"
    verbose_name = "meterbox"
    default_auto_field = "django.db.models.BigAutoField"
