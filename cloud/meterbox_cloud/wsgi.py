"""WSGI entry point for gunicorn (``python -m meterbox_cloud serve`` starts it with TLS)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meterbox_cloud.settings")
application = get_wsgi_application()
