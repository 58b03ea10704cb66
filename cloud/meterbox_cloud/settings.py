"""Django settings, all from the environment so that one process manager line configures a service.

``python -m meterbox_cloud`` sets these from its command-line flags:
METERBOX_CLOUD_DB (database URL), METERBOX_CLOUD_SECRET_KEY, METERBOX_CLOUD_CA_DIR (vendor CA,
signs box certificates and the CRL), METERBOX_CLOUD_BROKER_HOST / _PORT / _WS_PORT / _WS_PATH
(what a box is told to connect to), METERBOX_CLOUD_POLL_INTERVAL, METERBOX_CLOUD_ALLOWED_HOSTS,
METERBOX_CLOUD_TRUSTED_PROXIES (load balancers, forwarded.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from .dburl import parse

BASE_DIR = Path(__file__).resolve().parent
env = os.environ.get

SECRET_KEY = env("METERBOX_CLOUD_SECRET_KEY") or "unset: only management commands that sign nothing"
DEBUG = env("METERBOX_CLOUD_DEBUG", "") == "1"
ALLOWED_HOSTS = [h for h in env("METERBOX_CLOUD_ALLOWED_HOSTS", "*").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "meterbox_cloud",
]
MIDDLEWARE = [
    "meterbox_cloud.forwarded.TrustedProxyMiddleware",   # first: every later part sees the client's address
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "meterbox_cloud.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "meterbox_cloud.wsgi.application"
DATABASES = {"default": parse(env("METERBOX_CLOUD_DB", "sqlite:///meterbox-cloud.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True  # serve the admin's files without a collectstatic step
LOGIN_URL = "/staff/login/"
LOGIN_REDIRECT_URL = "/staff/"
# Served over HTTPS only (gunicorn terminates TLS): cookies never travel in clear.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env("METERBOX_CLOUD_INSECURE_COOKIES", "") != "1"
SESSION_COOKIE_AGE = 7 * 24 * 3600

METERBOX = {
    "CA_DIR": env("METERBOX_CLOUD_CA_DIR", ""),
    "BROKER_HOST": env("METERBOX_CLOUD_BROKER_HOST", "localhost"),
    "BROKER_PORT": int(env("METERBOX_CLOUD_BROKER_PORT", "8883")),
    "BROKER_WS_PORT": int(env("METERBOX_CLOUD_BROKER_WS_PORT", "443")),
    "BROKER_WS_PATH": env("METERBOX_CLOUD_BROKER_WS_PATH", "/mqtt"),
    "POLL_INTERVAL": env("METERBOX_CLOUD_POLL_INTERVAL", "15m"),
    "CERT_DAYS": int(env("METERBOX_CLOUD_CERT_DAYS", "90")),
    "RETRY_AFTER": int(env("METERBOX_CLOUD_RETRY_AFTER", "3")),
    # Load balancers whose X-Forwarded-For/-Host/-Proto are believed (forwarded.py); none by default.
    "TRUSTED_PROXIES": env("METERBOX_CLOUD_TRUSTED_PROXIES", ""),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"meterbox_cloud": {"handlers": ["stderr"], "level": env("METERBOX_CLOUD_LOG", "INFO"),
                                   "propagate": False}},
}
