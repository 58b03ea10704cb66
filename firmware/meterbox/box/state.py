"""What the box is doing, in the few words the panel and the setup page need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BoxState:
    """A snapshot the daemon builds; the panel and the setup page only read it.

    ``fault`` is a fault class name from hw/legend.toml (e.g. ``"tls"``), or None.

    Example::

        panel.show(BoxState(paused=False, unclaimed=False, fault=None,
                            sending_backlog=True, uploads_ok=True))
    """

    paused: bool = False
    unclaimed: bool = False
    fault: str | None = None
    sending_backlog: bool = False
    uploads_ok: bool = False
