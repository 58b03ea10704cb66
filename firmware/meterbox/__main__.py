from meterbox.cli import main

raise SystemExit(main())
