"""Database URLs (``sqlite:///path`` or ``postgresql://user:pass@host:port/name``) to Django settings.

One URL is easier to hand to a service unit or a test than five settings; the parser is
small enough to keep here rather than add a dependency.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; str() shows the accepted forms."""


def parse(url: str) -> dict[str, Any]:
    """Django ``DATABASES["default"]`` for ``url``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db
        path = urllib.parse.unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise DatabaseUrlError(f"{url!r} names no file; use sqlite:///meterbox-cloud.sqlite3")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(path)),
                "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE",
                            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}}
    if parts.scheme in {"postgres", "postgresql"}:
        query = dict(urllib.parse.parse_qsl(parts.query))
        options = {k: v for k, v in query.items() if k != "host"}
        return {"ENGINE": "django.db.backends.postgresql",
                "NAME": urllib.parse.unquote(parts.path.lstrip("/")) or "meterbox",
                "USER": urllib.parse.unquote(parts.username or ""),
                "PASSWORD": urllib.parse.unquote(parts.password or ""),
                "HOST": query.get("host") or parts.hostname or "",
                "PORT": str(parts.port or ""),
                "CONN_MAX_AGE": 60, "OPTIONS": options}
    raise DatabaseUrlError(f"unsupported database URL {url!r}; use sqlite:///FILE or "
                           f"postgresql://USER:PASSWORD@HOST:PORT/NAME")
