"""``python -m meterbox_factory`` is ``meterbox-factory``."""

from .cli import main

raise SystemExit(main())
