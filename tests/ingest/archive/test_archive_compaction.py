"""Compaction of closed days (issue 24: one object per day and dataset for readers of a bucket):
the rollup merges a closed day's hour files into `day.parquet` with exactly the same rows, a
compaction cut short never counts a row twice and the next run finishes it, and a rebuilt day is
compacted again from what PostgreSQL holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from terragon_core import COMPACT_FILE, ArchiveDataset
from terragon_ingest.archive import files, repository
from terragon_ingest.archive import rollup as rollup_module
from terragon_ingest.archive.location import LocalArchive
from terragon_ingest.archive.rollup import rebuild_day, rollup
from tests.dashboard.seed import Row, connect, insert_quarantine, utc_day
from tests.ingest.archive.test_archive_rollup import (
    _assert_archive_equals_postgres,
    _postgres_groups,
    _seed_days,
)

CLOSED = (-3, -2, -1)


def _rollup(url: str, root: Path, until: datetime | None = None) -> rollup_module.RollupResult:
    with repository.connect(url) as conn:
        return rollup(conn, root, settle_seconds=60, until=until)


def _names(root: Path, dataset: ArchiveDataset, day: date) -> list[str]:
    return sorted(p.name for p in (root / files.day_dir(dataset, day)).glob("*.parquet"))


def _all_rows(root: Path, dataset: ArchiveDataset) -> list[tuple]:
    """Every column of every row, `day` included, in a stable order."""
    con = files.open_archive(root)
    try:
        return con.execute(f"SELECT * FROM {dataset} ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_compacting_a_closed_day_keeps_exactly_its_rows_in_one_file(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_days(database_url)
    # the archive as the rollup wrote it before compaction: hour files only
    monkeypatch.setattr(rollup_module, "_compact", lambda *args, **kwargs: None)
    end = utc_day(0, hour=0)
    _rollup(database_url, tmp_path, until=end)
    before = {d: _all_rows(tmp_path, d) for d in files.COMPACTED}
    assert before[ArchiveDataset.QUARANTINE_ROWS] and before[ArchiveDataset.QUARANTINE_MINUTELY]
    assert len(_names(tmp_path, ArchiveDataset.QUARANTINE_MINUTELY, utc_day(-1).date())) > 1

    con = files.connect()
    for offset in CLOSED:
        day = utc_day(offset).date()
        for dataset in files.COMPACTED:
            files.compact_day(con, tmp_path, dataset, day)
    con.close()

    for dataset in files.COMPACTED:
        assert _all_rows(tmp_path, dataset) == before[dataset], dataset
    for offset in CLOSED:
        day = utc_day(offset).date()
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_ROWS, day) == [COMPACT_FILE]
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_MINUTELY, day) == [COMPACT_FILE]
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_DAILY, day) == ["daily.parquet"]
    _assert_archive_equals_postgres(database_url, tmp_path, end)


def test_the_rollup_compacts_each_day_once_it_has_closed(database_url: str, tmp_path: Path) -> None:
    _seed_days(database_url)
    first = _rollup(database_url, tmp_path)
    assert first.end is not None
    for offset in CLOSED:
        day = utc_day(offset).date()
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_ROWS, day) == [COMPACT_FILE], day
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_MINUTELY, day) == [COMPACT_FILE], day
    today = first.end.date()
    live = _names(tmp_path, ArchiveDataset.QUARANTINE_ROWS, today)
    assert live and COMPACT_FILE not in live  # the open day keeps its hour files
    _assert_archive_equals_postgres(database_url, tmp_path, first.end)
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))

    second = _rollup(database_url, tmp_path)
    assert second.rows["quarantine"] == 0
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == listing


def test_a_compaction_cut_short_counts_every_row_once_and_the_next_run_finishes_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_days(database_url)
    first_day = utc_day(CLOSED[0]).date()
    real_delete = LocalArchive.delete

    def crash(self: LocalArchive, rel: str) -> None:
        raise RuntimeError("simulated crash after day.parquet was published")

    monkeypatch.setattr(LocalArchive, "delete", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _rollup(database_url, tmp_path)
    monkeypatch.setattr(LocalArchive, "delete", real_delete)

    left = _names(tmp_path, ArchiveDataset.QUARANTINE_ROWS, first_day)
    assert COMPACT_FILE in left and len(left) > 1  # the day file and every hour file beside it
    # readers take the day file alone: the day counts as PostgreSQL does, not twice
    end = datetime.combine(first_day + timedelta(days=1), datetime.min.time(), UTC)
    expected = {k: v for k, v in _postgres_groups(database_url, end).items() if k[0] == first_day}
    con = files.open_archive(tmp_path)
    archived = con.execute(
        "SELECT day, reason, repo_full_name, user_id, sandbox_provider, count(*) "
        "FROM quarantine_rows WHERE day = ? GROUP BY ALL",
        [first_day],
    ).fetchall()
    con.close()
    assert {tuple(r[:-1]): r[-1] for r in archived} == expected

    resumed = _rollup(database_url, tmp_path)
    assert resumed.end is not None
    for offset in CLOSED:
        day = utc_day(offset).date()
        assert _names(tmp_path, ArchiveDataset.QUARANTINE_ROWS, day) == [COMPACT_FILE], day
    _assert_archive_equals_postgres(database_url, tmp_path, resumed.end)


def test_rebuilding_a_compacted_day_compacts_what_postgres_holds(
    database_url: str, tmp_path: Path
) -> None:
    _seed_days(database_url)
    _rollup(database_url, tmp_path)
    day = utc_day(-2).date()
    with connect(database_url) as conn:  # committed after the rollup had copied the day
        insert_quarantine(conn, [Row(at=utc_day(-2, hour=23, minute=59), repo="acme/late")])

    with repository.connect(database_url) as conn:
        plan = rebuild_day(conn, tmp_path, day)
    assert plan.rows > 0

    for dataset in (ArchiveDataset.QUARANTINE_ROWS, ArchiveDataset.QUARANTINE_MINUTELY):
        assert _names(tmp_path, dataset, day) == [COMPACT_FILE], dataset
    end = utc_day(0, hour=0)
    con = files.open_archive(tmp_path)
    late = con.execute(
        "SELECT (SELECT count(*) FROM quarantine_rows WHERE repo_full_name = 'acme/late'), "
        "(SELECT sum(quarantined) FROM quarantine_daily WHERE repo_full_name = 'acme/late')"
    ).fetchone()
    con.close()
    assert late == (1, 1)
    expected = {k: v for k, v in _postgres_groups(database_url, end).items() if k[0] == day}
    con = files.open_archive(tmp_path)
    for dataset, measure in (
        (ArchiveDataset.QUARANTINE_ROWS, "count(*)"),
        (ArchiveDataset.QUARANTINE_MINUTELY, "sum(quarantined)"),
        (ArchiveDataset.QUARANTINE_DAILY, "sum(quarantined)"),
    ):
        found = con.execute(
            f"SELECT day, reason, repo_full_name, user_id, sandbox_provider, {measure} "
            f"FROM {dataset} WHERE day = ? GROUP BY ALL",
            [day],
        ).fetchall()
        assert {tuple(r[:-1]): r[-1] for r in found} == expected, dataset
    con.close()
