"""Where a command finds the installation it operates on: `DATABASE_URL` (or `--database-url`)
when given, else the running `terragon up` of the data directory (`--data-dir`,
`TERRAGON_DATA_DIR`, default `.data`), which writes its URLs to `<data-dir>/up.json` at start.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from terragon_core import UP_STATE_FILE


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The given URL, else the one the data directory's `terragon up` is running."""
    if database_url:
        return database_url
    if (state := up_state(data_dir)) is not None:
        return str(state["databaseUrl"])
    raise click.UsageError(
        f"no database: set DATABASE_URL (or --database-url), or start `terragon up` first "
        f"(no {data_dir / UP_STATE_FILE}; another data directory: --data-dir)"
    )


def resolve_valkey_url(valkey_url: str | None, data_dir: Path) -> str | None:
    """The given URL, else the one the data directory's `terragon up` is running, else None."""
    if valkey_url:
        return valkey_url
    state = up_state(data_dir)
    return str(state["valkeyUrl"]) if state and state.get("valkeyUrl") else None


def up_state(data_dir: Path) -> dict[str, object] | None:
    """What the data directory's `terragon up` wrote at start, if it did."""
    path = data_dir / UP_STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


data_dir_option = click.option(
    "--data-dir",
    envvar="TERRAGON_DATA_DIR",
    default=".data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The installation: data directory of `terragon up` (its up.json names the servers; "
    "its objects/ holds offloaded payloads). Env TERRAGON_DATA_DIR.",
)
database_url_option = click.option(
    "--database-url",
    envvar="DATABASE_URL",
    default=None,
    help="PostgreSQL URL (env DATABASE_URL). Default: the one the --data-dir's `terragon up` runs.",
)
