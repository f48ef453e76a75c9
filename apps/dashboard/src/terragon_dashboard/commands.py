"""The CLI lines the page prints for one quarantine row, run as printed from the checkout
(CONTRACT §7): `uv run terragon …`, carrying what finds the installation (`--data-dir` when the
dashboard knows it) and never a password. Every value is shell-quoted, and the archive query's
id is an SQL string literal, so a row's text cannot become a command or a query."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from terragon_core import UP_STATE_FILE, ArchiveDataset

CLI: Final = ("uv", "run", "terragon")


@dataclass(frozen=True, slots=True)
class Installation:
    """What the dashboard was started with (its settings)."""

    archive: Path | str
    """The archive's directory, or its `s3://` URL."""
    data_dir: Path | None = None
    database_url: str | None = None

    def _runs_database(self) -> bool:
        """Whether `--data-dir` alone finds the database: its `terragon up` runs this one."""
        if self.data_dir is None or not self.database_url:
            return False
        try:
            state = json.loads((self.data_dir / UP_STATE_FILE).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(state, dict) and state.get("databaseUrl") == self.database_url

    def database_flags(self) -> tuple[list[str], str | None]:
        """The flags that find the database (and the objects), and what the reader must add when
        they cannot be printed (a URL with a password)."""
        data_dir = ["--data-dir", str(self.data_dir)] if self.data_dir else []
        if self._runs_database() or not self.database_url:
            return data_dir, None
        if urlsplit(self.database_url).password:
            return data_dir, "set DATABASE_URL first (it holds a password, so it is not printed)"
        return [*data_dir, "--database-url", self.database_url], None

    def archive_flags(self) -> list[str]:
        archive = str(self.archive)
        if archive.startswith("s3://"):
            return ["--archive-url", archive]
        if self.data_dir is not None and Path(archive) == self.data_dir / "archive":
            return ["--data-dir", str(self.data_dir)]
        return ["--archive-dir", archive]


_SPECIAL_IN_DOUBLE_QUOTES: Final = frozenset('"$`\\!') | {chr(c) for c in range(32)} | {"\x7f"}


def _quote(word: str) -> str:
    """`word` for a POSIX shell: bare when it needs no quoting, in double quotes when nothing in it
    is special there (an SQL query with its '…' literals reads as written), else `shlex.quote`."""
    quoted = shlex.quote(word)
    if quoted == word or "'" not in word or set(word) & _SPECIAL_IN_DOUBLE_QUOTES:
        return quoted
    return f'"{word}"'


def _line(*words: str) -> str:
    return " ".join(_quote(w) for w in (*CLI, *words))


def sql_literal(value: str) -> str:
    """`value` as an SQL string literal (a quote doubled)."""
    return "'" + value.replace("'", "''") + "'"


def archive_row_query(quarantine_id: str, day: date) -> str:
    """The archived row: its day (the partition: one file read) and its id."""
    return (
        f"SELECT * FROM {ArchiveDataset.QUARANTINE_ROWS.value} "
        f"WHERE day = DATE '{day.isoformat()}' AND id = {sql_literal(quarantine_id)}"
    )


def archive_line(installation: Installation, quarantine_id: str, day: date) -> str:
    """`archive sql` printing the archived row as JSON."""
    return _line(
        "archive",
        "sql",
        *installation.archive_flags(),
        "--format",
        "json",
        archive_row_query(quarantine_id, day),
    )


def postgres_lines(installation: Installation, quarantine_id: str) -> list[str]:
    """`quarantine show`, `show --payload` and `replay` for a row PostgreSQL holds."""
    flags, _ = installation.database_flags()
    # an id that starts with "-" would be read as an option: after "--" it is the argument
    qid = ["--", quarantine_id] if quarantine_id.startswith("-") else [quarantine_id]
    return [
        _line("quarantine", "show", *flags, *qid),
        _line("quarantine", "show", *flags, "--payload", *qid),
        _line("quarantine", "replay", *flags, *qid),
    ]
