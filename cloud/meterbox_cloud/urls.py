"""URL map: the claim page (phone), the enrollment API (box), staff pages and the admin (vendor)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from . import claim, enroll, staff

urlpatterns = [
    path("claim", claim.claim, name="claim"),
    path("claim/status", claim.status_page, name="claim-status"),
    path("claim/state", claim.status_json, name="claim-state"),
    path("api/v1/enroll", enroll.enroll, name="enroll"),
    path("staff/", staff.sites, name="staff"),
    path("staff/box/<str:box_id>", staff.box, name="staff-box"),
    path("staff/login/", auth_views.LoginView.as_view(template_name="meterbox_cloud/login.html"), name="login"),
    path("admin/", admin.site.urls),
]
