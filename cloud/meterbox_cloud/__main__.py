"""``python -m meterbox_cloud``: see cli.py."""

from .cli import main

raise SystemExit(main())
