"""The archive rollup against real Postgres: totals equal Postgres counts exactly, however many
times it runs and wherever it crashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terragon_core import ArchiveDataset, MetricName, QuarantineReason, quarantine_thread_key
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.location import ArchiveLocation
from terragon_ingest.archive.rollup import rollup
from tests.dashboard.seed import (
    Row,
    connect,
    ensure_day_partitions,
    insert_access_denied,
    insert_quarantine,
    insert_strict_run,
    utc_day,
)

R = QuarantineReason
GROUP = "reason, repo_full_name, user_id, sandbox_provider"


def _seed_days(url: str) -> list[Row]:
    """Rows on three past days (in their own partitions) and today, across hours and groups."""
    rows: list[Row] = []
    with connect(url) as conn:
        ensure_day_partitions(conn, utc_day(-3).date(), 3)
        for offset in (-3, -2, -1):
            for i in range(30):
                rows.append(
                    Row(
                        at=utc_day(offset, hour=i % 24, minute=i),
                        reason=list(R)[i % len(R)],
                        repo=f"acme/repo-{i % 4}",
                        user=f"user-{i % 3}",
                        provider=("docker", "e2b")[i % 2],
                        size=100 + i,
                        offloaded=i % 7 == 0,
                        offload_skipped=i % 11 == 0,
                    )
                )
        now = datetime.now(UTC)
        rows += [Row(at=now - timedelta(minutes=10 + i), repo="acme/live") for i in range(5)]
        insert_quarantine(conn, rows)
    return rows


def _postgres_groups(url: str, before: datetime) -> dict[tuple, int]:
    with connect(url) as conn:
        result = conn.execute(
            f"SELECT (created_at AT TIME ZONE 'UTC')::date, {GROUP}, count(*) "
            "FROM daemon_event_quarantine WHERE created_at < %s GROUP BY 1, 2, 3, 4, 5",
            (before,),
        ).fetchall()
    return {tuple(r[:-1]): r[-1] for r in result}


def _archive_groups(root: Path | ArchiveLocation, dataset: ArchiveDataset) -> dict[tuple, int]:
    con = files.open_archive(root)
    measure = "count(*)" if dataset is ArchiveDataset.QUARANTINE_ROWS else "sum(quarantined)"
    result = con.execute(f"SELECT day, {GROUP}, {measure} FROM {dataset} GROUP BY ALL").fetchall()
    return {tuple(r[:-1]): r[-1] for r in result}


def _assert_archive_equals_postgres(url: str, root: Path | ArchiveLocation, end: datetime) -> None:
    expected = _postgres_groups(url, end)
    assert expected, "the seed must have produced rows before `end`"
    for dataset in (
        ArchiveDataset.QUARANTINE_ROWS,
        ArchiveDataset.QUARANTINE_MINUTELY,
        ArchiveDataset.QUARANTINE_DAILY,
    ):
        assert _archive_groups(root, dataset) == expected, dataset


def _rollup(url: str, root: Path, until: datetime | None = None):
    with repository.connect(url) as conn:
        return rollup(conn, root, settle_seconds=60, until=until)


def test_rollup_twice_equals_postgres_counts_and_rewrites_no_extra_files(
    database_url: str, tmp_path: Path
) -> None:
    _seed_days(database_url)
    first = _rollup(database_url, tmp_path)
    assert first.end is not None
    assert first.rows["quarantine"] == 95
    _assert_archive_equals_postgres(database_url, tmp_path, first.end)
    listing = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet"))

    second = _rollup(database_url, tmp_path)
    assert second.rows["quarantine"] == 0
    _assert_archive_equals_postgres(database_url, tmp_path, second.end or first.end)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == listing
    assert not list(tmp_path.rglob("*.tmp"))


def test_rollup_picks_up_new_rows_incrementally(database_url: str, tmp_path: Path) -> None:
    _seed_days(database_url)
    t1 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    first = _rollup(database_url, tmp_path, until=t1)
    assert first.end == t1
    _assert_archive_equals_postgres(database_url, tmp_path, t1)
    with connect(database_url) as conn:
        insert_quarantine(conn, [Row(at=t1 + timedelta(seconds=30), repo="acme/new")])
    second = _rollup(database_url, tmp_path, until=t1 + timedelta(minutes=2))
    assert second.rows["quarantine"] == 1
    _assert_archive_equals_postgres(database_url, tmp_path, t1 + timedelta(minutes=2))
    third = _rollup(database_url, tmp_path)
    assert third.rows["quarantine"] == 5  # the seed's live rows, 10-14 minutes old
    assert third.end is not None
    _assert_archive_equals_postgres(database_url, tmp_path, third.end)


@pytest.mark.parametrize("crash_at", ["advance_watermark", "write_minutely", "write_daily"])
def test_crash_half_way_then_resume_never_double_counts(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    _seed_days(database_url)
    module = repository if crash_at == "advance_watermark" else files
    real = getattr(module, crash_at)
    calls = {"n": 0}

    def crash_on_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, crash_at, crash_on_fourth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _rollup(database_url, tmp_path)
    monkeypatch.setattr(module, crash_at, real)

    resumed = _rollup(database_url, tmp_path)
    assert resumed.end is not None
    _assert_archive_equals_postgres(database_url, tmp_path, resumed.end)
    again = _rollup(database_url, tmp_path)
    assert again.rows["quarantine"] == 0
    _assert_archive_equals_postgres(database_url, tmp_path, again.end or resumed.end)


def test_rows_keep_payload_controls_and_strictness(database_url: str, tmp_path: Path) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    with connect(database_url) as conn:
        insert_strict_run(conn, "run-strict", strict=True)
        insert_strict_run(conn, "run-lenient", strict=False)
        insert_quarantine(
            conn,
            [
                Row(at=at, reason=R.MISMATCH, active_run_id="run-strict", offloaded=True),
                Row(at=at, reason=R.MISMATCH, active_run_id="run-lenient"),
                Row(at=at, reason=R.MISSING_RUN_ID, active_run_id="run-strict"),
                Row(at=at, reason=R.LEGACY_MODE, active_run_id="run-lenient"),
            ],
        )
    _rollup(database_url, tmp_path)
    con = files.open_archive(tmp_path)
    metrics = dict(
        con.execute(
            "SELECT metric, sum(quarantined) FROM quarantine_minutely GROUP BY ALL"
        ).fetchall()
    )
    assert metrics == {
        MetricName.STRICT_MISMATCH.value: 2,
        MetricName.LEGACY_MODE.value: 1,
        None: 1,  # mismatch of a lenient run is not a strict mismatch
    }
    prefix, key, offloaded = con.execute(
        "SELECT payload_prefix_2k, payload_object_key, offloaded FROM quarantine_rows "
        "JOIN quarantine_daily USING (reason, strict, repo_full_name, user_id, sandbox_provider) "
        "WHERE payload_object_key IS NOT NULL"
    ).fetchone()  # type: ignore[misc]
    assert prefix.endswith('"quoted\\""}') and "\n" in prefix
    assert key.startswith(f"preview/daemon-quarantine/{quarantine_thread_key('thread-1')}/")
    assert offloaded == 1


def test_preview_events_are_archived(database_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with connect(database_url) as conn:
        insert_access_denied(conn, [now - timedelta(minutes=4 + i) for i in range(7)])
    result = _rollup(database_url, tmp_path)
    assert result.rows["preview_event"] == 7
    con = files.open_archive(tmp_path)
    row = con.execute(
        "SELECT count(*), any_value(properties::JSON ->> 'reason') FROM preview_events"
    ).fetchone()
    assert row == (7, "expired")


def test_empty_archive_answers_with_empty_views(tmp_path: Path) -> None:
    con = files.open_archive(tmp_path)
    for dataset in ArchiveDataset:
        assert con.execute(f"SELECT count(*) FROM {dataset}").fetchone() == (0,)
