"""`python -m terragon_daemon`: the daemon's command line (see `terragon_daemon.cli`)."""

from __future__ import annotations

import sys

from terragon_daemon.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
