"""No data lost on a hint (CONTRACT §7): retention's hint for a day that does not reconcile,
followed as printed, never drops an archived row. `archive rollup --rebuild-day` shows what it
would change and refuses to leave a day with fewer rows than the archive holds unless told to.

The case that lost data before: the archive held rows that PostgreSQL no longer had (history
written straight to the archive, as `up --demo` does), retention said "run `--rebuild-day`", and
the rebuild replaced the day with PostgreSQL's rows: 0."""

from __future__ import annotations

import json
import re
import shlex
from datetime import date, timedelta
from pathlib import Path

import pytest

from terragon_core import ArchiveDataset
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.location import as_location
from terragon_ingest.archive.rollup import rollup
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tests.fixtures.processes import run_terragon

OLD = -35


def _day() -> date:
    return utc_day(OLD).date()


def _archived(root: Path) -> int:
    return files.archived_rows(as_location(root), ArchiveDataset.QUARANTINE_ROWS, _day())


def _cli(url: str, data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {"DATABASE_URL": url, "TERRAGON_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return run_terragon(list(args), env)


def _printed_command(hint: str) -> list[str]:
    """The command a hint names between backticks, as an operator would paste it."""
    [command] = re.findall(r"`([^`]+)`", hint)
    argv = shlex.split(command)
    assert argv[:3] == ["uv", "run", "terragon"], command
    return argv[3:]


@pytest.fixture(name="archive_ahead")
def fx_archive_ahead(database_url: str, tmp_path: Path) -> Path:
    """A day whose archive holds 12 rows while PostgreSQL holds 7 of them."""
    lo = utc_day(OLD, hour=0)
    with connect(database_url) as conn:
        ensure_day_partitions(conn, _day(), 1)
        insert_quarantine(conn, [Row(at=utc_day(OLD, hour=h)) for h in range(0, 24, 2)])
    root = tmp_path / "archive"
    with repository.connect(database_url) as conn:
        rollup(conn, root, settle_seconds=60)
    with connect(database_url) as conn:
        conn.execute(
            "DELETE FROM daemon_event_quarantine WHERE created_at >= %s AND created_at < %s",
            (lo + timedelta(hours=14), lo + timedelta(days=1)),
        )
    assert _archived(root) == 12
    return root


def test_retentions_hint_followed_as_printed_keeps_every_archived_row(
    database_url: str, archive_ahead: Path
) -> None:
    data_dir = archive_ahead.parent
    code, _, stderr = _cli(database_url, data_dir, "retention", "purge")
    assert code == 0, stderr
    [kept] = [
        e
        for e in map(json.loads, stderr.splitlines())
        if e["event"] == "retention_day_kept" and e["dataset"] == "quarantine"
    ]
    hint_argv = _printed_command(kept["hint"])
    assert "--dry-run" in hint_argv
    # it names the installation, so it runs as printed without the purge's environment
    assert hint_argv[hint_argv.index("--data-dir") + 1] == str(data_dir.resolve())
    elsewhere = data_dir / "elsewhere"
    code, stdout, stderr = _cli(database_url, elsewhere, *hint_argv)
    assert code == 0, stderr
    assert f"would rebuild {_day()}" in stdout
    assert "quarantine_rows: 12 archived -> 7 (-5)" in stdout
    assert _archived(archive_ahead) == 12

    # The hint goes on: "without --dry-run it rewrites the day": refused, nothing changed.
    code, stdout, stderr = _cli(
        database_url, elsewhere, *[a for a in hint_argv if a != "--dry-run"]
    )
    assert code == 1
    assert "refusing to rebuild" in stderr and "5 archived row(s)" in stderr, stderr
    assert "--allow-shrink" in stderr
    assert _archived(archive_ahead) == 12


def test_a_rebuild_that_only_adds_rows_runs_and_shows_its_counts(
    database_url: str, tmp_path: Path
) -> None:
    with connect(database_url) as conn:
        ensure_day_partitions(conn, _day(), 1)
        insert_quarantine(conn, [Row(at=utc_day(OLD, hour=h)) for h in range(0, 24, 2)])
    root = tmp_path / "archive"
    with repository.connect(database_url) as conn:
        rollup(conn, root, settle_seconds=60)
    with connect(database_url) as conn:  # committed after the rollup passed the day
        insert_quarantine(conn, [Row(at=utc_day(OLD, hour=23, minute=30))])

    code, stdout, stderr = _cli(
        database_url, tmp_path, "archive", "rollup", "--rebuild-day", str(_day())
    )
    assert code == 0, stderr
    assert f"rebuilt {_day()}" in stdout and "quarantine_rows: 12 archived -> 13 (+1)" in stdout
    assert _archived(root) == 13


def test_allow_shrink_replaces_the_day_when_the_operator_says_so(
    database_url: str, archive_ahead: Path
) -> None:
    code, stdout, stderr = _cli(
        database_url,
        archive_ahead.parent,
        "archive",
        "rollup",
        "--rebuild-day",
        str(_day()),
        "--allow-shrink",
    )
    assert code == 0, stderr
    assert "quarantine_rows: 12 archived -> 7 (-5)" in stdout
    assert _archived(archive_ahead) == 7


def test_the_rebuild_flags_are_refused_without_a_day(database_url: str, tmp_path: Path) -> None:
    code, _, stderr = _cli(database_url, tmp_path, "archive", "rollup", "--allow-shrink")
    assert code == 2 and "--rebuild-day" in stderr
