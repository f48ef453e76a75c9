"""Retention against real Postgres: a day past 30 days leaves by DETACH + DROP only after the
archive reconciles with it, emits `preview.quarantine.purge`, and stays answerable from the archive."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from obstore.store import LocalStore

from terragon_core import QUARANTINE_PURGE_EVENT, MetricName, QuarantineReason
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.retention import DayPlan, purge
from terragon_ingest.archive.rollup import rebuild_day, rollup
from terragon_ingest.cli import main
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.telemetry import Metrics
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day

R = QuarantineReason
OLD, OLDER, IN_DEFAULT, RECENT = -35, -40, -45, -5


def _day(offset: int) -> date:
    return utc_day(offset).date()


def _partition(offset: int) -> str:
    return repository.partition_name(_day(offset))


def _exists(url: str, table: str) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None


def _count(url: str, offset: int) -> int:
    lo = utc_day(offset, hour=0)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM daemon_event_quarantine "
            "WHERE created_at >= %s AND created_at < %s + interval '1 day'",
            (lo, lo),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(name="seeded")
def fx_seeded(database_url: str, tmp_path: Path) -> list[Row]:
    rows: list[Row] = []
    with connect(database_url) as conn:
        for offset in (OLDER, OLD, RECENT):  # IN_DEFAULT gets no partition: its rows go to DEFAULT
            ensure_day_partitions(conn, _day(offset), 1)
        for offset in (IN_DEFAULT, OLDER, OLD, RECENT):
            for i in range(12):
                rows.append(
                    Row(
                        at=utc_day(offset, hour=i * 2, minute=i),
                        reason=(R.MISMATCH, R.LEGACY_MODE, R.MISSING_END_SHA)[i % 3],
                        repo=f"acme/r{i % 2}",
                        offloaded=i % 4 == 0,
                    )
                )
        insert_quarantine(conn, rows)
    for row in rows:
        if row.object_key:
            path = tmp_path / "objects" / row.object_key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
    with repository.connect(database_url) as conn:
        rollup(conn, tmp_path / "archive", settle_seconds=60)
    return rows


def _daily_totals(root: Path) -> list[tuple]:
    con = files.open_archive(root)
    return con.execute(
        "SELECT day, sum(quarantined) FROM quarantine_daily GROUP BY day ORDER BY day"
    ).fetchall()


def _rebuild(url: str, root: Path, day: date) -> int:
    with repository.connect(url) as conn:
        return rebuild_day(conn, root, day).rows


async def _purge(
    url: str,
    tmp_path: Path,
    metrics: Metrics | None = None,
    dry_run: bool = False,
    dataset: str | None = "quarantine",
) -> list[DayPlan]:
    """The plans of `dataset`'s days (None: all; the seeded days have empty preview-event
    partitions too, which go the same way)."""
    conn = await repository.async_connect(url)
    async with conn:
        plans = await purge(
            conn,
            archive_root=tmp_path / "archive",
            store=QuarantineObjects(LocalStore(tmp_path / "objects", mkdir=True), "test"),
            metrics=metrics or Metrics(),
            dry_run=dry_run,
        )
    return [p for p in plans if dataset is None or p.dataset == dataset]


def _purge_events(url: str) -> list[dict]:
    with connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT properties FROM preview_event WHERE event_name = %s "
                "AND origin = 'preview_maintenance' ORDER BY properties ->> 'day'",
                (QUARANTINE_PURGE_EVENT,),
            ).fetchall()
        ]


async def test_purge_drops_partitions_and_the_archive_still_answers(
    database_url: str, tmp_path: Path, seeded: list[Row]
) -> None:
    metrics = Metrics()
    plans = await _purge(database_url, tmp_path, metrics)

    assert [(p.day, p.purged) for p in plans] == [
        (_day(IN_DEFAULT), True),
        (_day(OLDER), True),
        (_day(OLD), True),
    ]
    assert not _exists(database_url, _partition(OLDER))
    assert not _exists(database_url, _partition(OLD))
    assert _exists(database_url, _partition(RECENT))
    assert [_count(database_url, d) for d in (IN_DEFAULT, OLDER, OLD, RECENT)] == [0, 0, 0, 12]

    events = _purge_events(database_url)
    assert [e["day"] for e in events] == [str(_day(d)) for d in (IN_DEFAULT, OLDER, OLD)]
    assert all(
        e["byReason"] == {"mismatch": 4, "legacy_mode": 4, "missing_end_sha": 4} for e in events
    )
    assert (
        metrics.value(MetricName.QUARANTINE_PURGE, repo="", user="", provider="", reason="mismatch")
        == 12
    )

    objects = {r.object_key for r in seeded if r.object_key}
    gone = {k for k in objects if not (tmp_path / "objects" / k).exists()}
    kept = objects - gone
    assert kept and all(f"/{_day(RECENT)}/" in k for k in kept)
    assert all(f"/{_day(RECENT)}/" not in k for k in gone) and len(gone) == 9

    answered = await asyncio.to_thread(_daily_totals, tmp_path / "archive")
    assert answered == [(_day(d), 12) for d in (IN_DEFAULT, OLDER, OLD, RECENT)]

    again = await _purge(database_url, tmp_path, dataset=None)
    assert again == []
    assert len(_purge_events(database_url)) == 3


async def test_purge_refuses_a_day_that_does_not_reconcile(
    database_url: str, tmp_path: Path, seeded: list[Row]
) -> None:
    late = Row(at=utc_day(OLD, hour=23, minute=59), reason=R.MISMATCH, offloaded=True)
    with connect(database_url) as conn:  # committed after the rollup passed its day
        insert_quarantine(conn, [late])
    (tmp_path / "objects" / str(late.object_key)).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "objects" / str(late.object_key)).write_text("{}")

    plans = {p.day: p for p in await _purge(database_url, tmp_path)}
    refused = plans[_day(OLD)]
    assert not refused.reconciled and not refused.purged
    assert "differ" in str(refused.problem)
    assert not refused.sealed
    assert _exists(database_url, _partition(OLD))
    assert _count(database_url, OLD) == 13
    assert (tmp_path / "objects" / str(late.object_key)).exists()
    assert str(_day(OLD)) not in [e["day"] for e in _purge_events(database_url)]
    assert plans[_day(OLDER)].purged  # the other days are not held back

    assert await asyncio.to_thread(_rebuild, database_url, tmp_path / "archive", _day(OLD)) == 13
    plans = {p.day: p for p in await _purge(database_url, tmp_path)}
    assert plans[_day(OLD)].purged
    assert not _exists(database_url, _partition(OLD))
    assert not (tmp_path / "objects" / str(late.object_key)).exists()


async def test_purge_refuses_days_the_rollup_has_not_reached(
    database_url: str, tmp_path: Path
) -> None:
    with connect(database_url) as conn:
        ensure_day_partitions(conn, _day(OLD), 1)
        insert_quarantine(conn, [Row(at=utc_day(OLD))])
    plans = await _purge(database_url, tmp_path)
    assert [(p.reconciled, p.problem) for p in plans] == [
        (False, "the rollup has not passed this day yet")
    ]
    assert _exists(database_url, _partition(OLD))


async def test_dry_run_changes_nothing(
    database_url: str, tmp_path: Path, seeded: list[Row]
) -> None:
    plans = await _purge(database_url, tmp_path, dry_run=True)
    assert [p.reconciled for p in plans] == [True, True, True]
    assert not any(p.purged for p in plans)
    assert _exists(database_url, _partition(OLD))
    assert _count(database_url, IN_DEFAULT) == 12
    assert _purge_events(database_url) == []


def test_cli_dry_run_and_sql(database_url: str, tmp_path: Path, seeded: list[Row]) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url, "TERRAGON_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = runner.invoke(main, ["retention", "purge", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum("daemon_event_quarantine_p" in ln and "would purge" in ln for ln in lines) == 2
    assert sum("(default)" in ln and "would purge" in ln for ln in lines) == 1
    assert sum("preview_event_p" in ln and "would purge" in ln for ln in lines) == 2
    assert _exists(database_url, _partition(OLD))

    result = runner.invoke(
        main,
        [
            "archive",
            "sql",
            "--format",
            "csv",
            "SELECT reason, sum(quarantined) AS n "
            "FROM quarantine_daily GROUP BY reason ORDER BY reason",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output  # LF line ends, as every other output
    assert result.output.splitlines() == [
        "reason,n",
        "legacy_mode,16",
        "mismatch,16",
        "missing_end_sha,16",
    ]
    bad = runner.invoke(main, ["archive", "sql", "SELECT * FROM nope"], env=env)
    assert bad.exit_code != 0 and "nope" in bad.output
