"""The CLI lines the dashboard prints (`terragon_dashboard.commands`): a hostile row id stays one
argument and one SQL string literal, a password never reaches a printed line, and the flags are
the ones that find the installation."""

from __future__ import annotations

import json
import shlex
from datetime import date
from pathlib import Path

import duckdb
import pytest

from terragon_core import UP_STATE_FILE
from terragon_dashboard.commands import (
    Installation,
    archive_line,
    archive_row_query,
    postgres_lines,
)

HOSTILE_IDS = [
    "x'; DROP TABLE quarantine_rows; --",
    "$(touch /tmp/pwned) `id` ; rm -rf ~",
    "--force",
    "-",
    "line\nbreak",
    "o''brien\\",
]
DAY = date(2026, 12, 4)


@pytest.mark.parametrize("quarantine_id", HOSTILE_IDS)
def test_a_hostile_id_stays_one_argument_and_one_literal(quarantine_id: str) -> None:
    installation = Installation(archive=Path("/srv/t/archive"), data_dir=Path("/srv/t"))
    words = shlex.split(archive_line(installation, quarantine_id, DAY))
    assert words[:5] == ["uv", "run", "terragon", "archive", "sql"]
    query = words[-1]
    assert query == archive_row_query(quarantine_id, DAY)
    # the query, run by DuckDB, selects exactly the row whose id is that text
    con = duckdb.connect()
    con.execute("CREATE TABLE quarantine_rows (id VARCHAR, day DATE)")
    con.executemany(
        "INSERT INTO quarantine_rows VALUES (?, ?)",
        [(quarantine_id, DAY), ("other", DAY), (quarantine_id, date(2026, 12, 5))],
    )
    assert con.execute(query).fetchall() == [(quarantine_id, DAY)]
    for line in postgres_lines(installation, quarantine_id):
        words = shlex.split(line)
        assert words[-1] == quarantine_id
        if quarantine_id.startswith("-"):  # never taken for an option
            assert words[-2] == "--"


@pytest.mark.parametrize(
    "secret",
    [
        "postgresql://ops:s3cr3t-pw@db.internal:5432/terragon",
        # a primary and its standby (libpq's multi-host form)
        "postgresql://ops:s3cr3t-pw@db1:5432,db2:5432/terragon?target_session_attrs=read-write",
    ],
)
def test_a_database_password_is_never_printed(tmp_path: Path, secret: str) -> None:
    installation = Installation(
        archive=tmp_path / "archive", data_dir=tmp_path, database_url=secret
    )
    flags, missing = installation.database_flags()
    assert flags == ["--data-dir", str(tmp_path)]
    assert missing is not None and "DATABASE_URL" in missing
    for line in postgres_lines(installation, "0b6c5bb2-1111-4222-8333-444455556666"):
        assert "s3cr3t" not in line and "--database-url" not in line


def test_data_dir_alone_when_its_terragon_up_runs_the_database(tmp_path: Path) -> None:
    url = "postgresql://postgres@/terragon?host=/tmp/pg"
    installation = Installation(archive=tmp_path / "archive", data_dir=tmp_path, database_url=url)
    # no up.json: the URL is printed (it holds no password)
    assert installation.database_flags() == (
        ["--data-dir", str(tmp_path), "--database-url", url],
        None,
    )
    (tmp_path / UP_STATE_FILE).write_text(json.dumps({"databaseUrl": url}))
    assert installation.database_flags() == (["--data-dir", str(tmp_path)], None)
    # another database than the one `up` runs: named
    (tmp_path / UP_STATE_FILE).write_text(json.dumps({"databaseUrl": url + "x"}))
    assert "--database-url" in installation.database_flags()[0]
    (tmp_path / UP_STATE_FILE).write_text("not json")
    assert "--database-url" in installation.database_flags()[0]


def test_archive_flags_name_the_archive_the_dashboard_reads(tmp_path: Path) -> None:
    assert Installation(archive=tmp_path / "archive", data_dir=tmp_path).archive_flags() == [
        "--data-dir",
        str(tmp_path),
    ]
    elsewhere = tmp_path / "elsewhere"
    assert Installation(archive=elsewhere, data_dir=tmp_path).archive_flags() == [
        "--archive-dir",
        str(elsewhere),
    ]
    assert Installation(archive="s3://bucket/archive").archive_flags() == [
        "--archive-url",
        "s3://bucket/archive",
    ]
