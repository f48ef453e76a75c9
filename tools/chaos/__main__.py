from __future__ import annotations

from tools.chaos.cli import main

raise SystemExit(main())
