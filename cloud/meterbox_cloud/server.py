"""``serve``: the Django app under gunicorn with TLS (a well-kept production WSGI server, pure Python)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn configured from our flags instead of its own command line."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # control_socket_disable is new in gunicorn 24
                self.cfg.set(key, value)

    def load(self) -> Any:
        from .wsgi import application

        return application


def serve(bind: str, certfile: str, keyfile: str, workers: int, threads: int) -> None:
    """Run until SIGTERM; each worker process serves ``threads`` requests at once."""
    Server({
        "bind": bind, "certfile": certfile, "keyfile": keyfile,
        "workers": workers, "threads": threads, "worker_class": "gthread",
        "accesslog": "-", "errorlog": "-", "loglevel": "info",
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
        "timeout": 30, "graceful_timeout": 5,
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,  # one per user by default: two services on a host would collide
    }).run()
