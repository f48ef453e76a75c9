"""How every `terragon` command finds the installation it operates on (CONTRACT §7), one rule:

1. the URLs the environment (or the command line) gives: `DATABASE_URL` / `--database-url`,
   `VALKEY_URL`, `OBJECT_STORE_URL`, `TERRAGON_ARCHIVE_URL`;
2. else the running `terragon up` of the data directory — `--data-dir`, else
   `TERRAGON_DATA_DIR`, else `.data` in the working directory — which writes its servers' URLs to
   `<data-dir>/up.json` at start and removes it at stop.

The data directory also holds what has no URL set: offloaded payloads (`objects/`), the archive
(`archive/`) and `local` sandbox sockets. Every command that reads or changes data takes
`--data-dir` through `data_dir_option`, and an error names what it looked for and where.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from terragon_core import UP_STATE_FILE
from terragon_core.env import env_var
from terragon_ingest.db import why_unreachable
from terragon_ingest.settings import DatabaseSettings, ServerSettings, Settings, get_settings

DATA_DIR_VAR: Final = env_var(ServerSettings, "DATA_DIR")
DATA_DIR_ENV: Final = DATA_DIR_VAR.name

F = TypeVar("F", bound=Callable[..., Any])

_DATA_DIR_HELP = (
    "The installation: data directory of `terragon up` (its up.json names the running servers; "
    "objects/ holds offloaded payloads, archive/ the archive). Env TERRAGON_DATA_DIR."
)


def data_dir_option(help: str = _DATA_DIR_HELP) -> Callable[[F], F]:
    """`--data-dir` (env `TERRAGON_DATA_DIR`, default `.data`): the one definition every command
    uses; `help` says what this command keeps there (`up` adds its demo default)."""
    return click.option(
        "--data-dir",
        default=DATA_DIR_VAR.read,  # read when the command runs, not at import
        show_default="TERRAGON_DATA_DIR, else .data",
        type=click.Path(file_okay=False, path_type=Path),
        help=help,
    )


def database_url_option(help: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--database-url",
        default=env_var(DatabaseSettings, "URL").read,
        help=help
        or "PostgreSQL URL (env DATABASE_URL). Default: the one the --data-dir's `terragon up` "
        "runs.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class UpState:
    """What a running `terragon up` wrote to `<data-dir>/up.json`."""

    path: Path
    database_url: str | None
    valkey_url: str | None
    pid: int | None


def up_state(data_dir: Path) -> UpState | None:
    """The data directory's `up.json`, if there is one (running or left by a killed `up`)."""
    path = data_dir.resolve() / UP_STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise click.ClickException(f"cannot read {path}: not a JSON object")
    pid = raw.get("pid")
    return UpState(
        path=path,
        database_url=str(raw["databaseUrl"]) if raw.get("databaseUrl") else None,
        valkey_url=str(raw["valkeyUrl"]) if raw.get("valkeyUrl") else None,
        pid=pid if isinstance(pid, int) else None,
    )


def _running(pid: int | None) -> bool:
    if pid is None:  # written by hand or by an older `up`: taken at its word
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def running_up(data_dir: Path) -> UpState | None:
    """The data directory's running `terragon up`; None when there is no `up.json`. An `up.json`
    whose process has exited (a killed `up` leaves it) is an error that says so: its embedded
    servers are gone, and waiting for them to answer would only time out."""
    state = up_state(data_dir)
    if state is not None and not _running(state.pid):
        raise click.ClickException(
            f"the terragon up of {data_dir.resolve()} is not running ({state.path} names pid "
            f"{state.pid}, which has exited): start it again (`uv run terragon up --data-dir "
            f"{data_dir}`), set DATABASE_URL, or pass --data-dir"
        )
    return state


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The given URL, else the one the data directory's running `terragon up` serves."""
    if database_url:
        return database_url
    state = running_up(data_dir)
    if state is not None and state.database_url:
        return state.database_url
    where = data_dir.resolve()
    raise click.ClickException(
        f"no running terragon up in {where} (no {where / UP_STATE_FILE}) and no DATABASE_URL: "
        "start `uv run terragon up`, set DATABASE_URL (or --database-url), or pass --data-dir"
    )


def check_database(url: str, data_dir: Path, *, given: bool, timeout: float) -> None:
    """One connection, so that a server that is not there is a one-line error naming the URL
    and where it came from (a pool would retry for its whole timeout, then raise a traceback)."""
    reason = why_unreachable(url, connect_timeout=timeout)
    if reason is not None:
        source = (
            "DATABASE_URL / --database-url"
            if given
            else f"{data_dir.resolve() / UP_STATE_FILE}, the running terragon up's"
        )
        raise click.ClickException(
            f"PostgreSQL at {redacted(url)} (from {source}) did not answer: {reason}"
        )


def redacted(url: str) -> str:
    """`url` without its password (it is printed)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_valkey_url(valkey_url: str | None, data_dir: Path) -> str | None:
    """The given URL, else the one the data directory's running `terragon up` serves, else None
    (not configured: the command says what it skips)."""
    if valkey_url:
        return valkey_url
    state = running_up(data_dir)
    return state.valkey_url if state is not None else None


def valkey_not_configured(data_dir: Path) -> str:
    """Why a command has no Valkey, naming where it looked."""
    where = data_dir.resolve() / UP_STATE_FILE
    found = f"{where} names none" if where.exists() else f"no running terragon up (no {where})"
    return f"Valkey is not configured: no VALKEY_URL, and {found}"


Database = Literal["required", "optional", "unused"]
"""What a command needs of the database: `optional` works without one (the dashboard over the
archive alone); `unused` reads only the data directory (`archive sql`)."""


def installation_settings(
    data_dir: Path, *, database_url: str | None = None, database: Database = "required"
) -> Settings:
    """The process's settings pointed at the installation: `DATA_DIR`, and (unless `unused`) the
    database and Valkey, found by the one rule above."""
    base = get_settings()
    settings = dataclasses.replace(
        base, server=dataclasses.replace(base.server, DATA_DIR=data_dir.resolve())
    )
    if database == "unused":
        return settings
    if database == "required":
        db_url: str | None = resolve_database_url(database_url, data_dir)
        check_database(db_url, data_dir, given=bool(database_url), timeout=base.db.CONNECT_TIMEOUT)
    else:
        db_url = database_url or ((s := running_up(data_dir)) and s.database_url) or None
    return dataclasses.replace(
        settings,
        db=dataclasses.replace(base.db, URL=db_url),
        valkey=dataclasses.replace(base.valkey, URL=resolve_valkey_url(base.valkey.URL, data_dir)),
    )


def installation(
    database: Literal["required", "optional"] = "required",
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`--data-dir` and `--database-url` on a command, which receives `settings` (from
    `installation_settings`) in their place."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @data_dir_option()
        @database_url_option()
        @functools.wraps(command)
        def wrapper(*args: Any, data_dir: Path, database_url: str | None, **kwargs: Any) -> None:
            settings = installation_settings(data_dir, database_url=database_url, database=database)
            return command(*args, settings=settings, **kwargs)

        return wrapper

    return decorate


def installation_flags(settings: Settings) -> str:
    """` --data-dir D` (and the archive, when it is not `D/archive`) for a command a hint prints:
    it then runs as printed from any directory. The database is found from there (the data
    directory's running `up`) or from the operator's DATABASE_URL. No filesystem call: async
    jobs build their hints with it."""
    data_dir = settings.server.DATA_DIR
    flags = f" --data-dir {shlex.quote(str(data_dir))}"
    archive = settings.archive
    if archive.URL:
        flags += f" --archive-url {shlex.quote(archive.URL)}"
    elif archive.DIR is not None and data_dir / "archive" != archive.DIR:
        flags += f" --archive-dir {shlex.quote(str(archive.DIR))}"
    return flags
