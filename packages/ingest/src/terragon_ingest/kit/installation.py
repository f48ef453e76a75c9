"""Where a command finds the installation it operates on: `DATABASE_URL` (or `--database-url`)
when given, else the running `terragon up` of the data directory (`--data-dir`,
`TERRAGON_DATA_DIR`, default `.data`), which writes its URLs to `<data-dir>/up.json` at start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import click

UP_STATE_FILE: Final = "up.json"
"""Written by `terragon up` into its data directory: `{pid, databaseUrl, valkeyUrl, api}`."""


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The given URL, else the one the data directory's `terragon up` is running."""
    if database_url:
        return database_url
    state = data_dir / UP_STATE_FILE
    if state.exists():
        return str(json.loads(state.read_text())["databaseUrl"])
    raise click.UsageError(
        "no database: set DATABASE_URL (or --database-url), or start `terragon up` first"
    )
