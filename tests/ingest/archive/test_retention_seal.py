"""Retention's seals and preview-event retention, against real Postgres and a real archive.

A day is counted once, when retention seals it (its count and the archive's groups, under a lock
on the partition); a later write to the day breaks the seal in the writer's own transaction, and
the purge then counts and refuses the day like any day that does not reconcile. Preview-event
days past 30 days go the same archive-first, reconcile-then-drop way as quarantine days."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql

from terragon_core import EVENT_PURGE_EVENT, ArchiveDataset, MetricName, PreviewEventName
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.retention import DayPlan, purge, seal_closed_days
from terragon_ingest.archive.rollup import rebuild_day, rollup
from terragon_ingest.telemetry import Metrics
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tests.fixtures.processes import run_terragon

OLD, RECENT, PREVIEW_OLD = -35, -5, -31


def _day(offset: int) -> date:
    return utc_day(offset).date()


def _exists(url: str, table: str) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None


def _seal(url: str, dataset: str, offset: int) -> int | None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT rows FROM archive_day_seal WHERE dataset = %s AND day = %s",
            (dataset, _day(offset)),
        ).fetchone()
    return None if row is None else int(row[0])


def _insert_events(url: str, at: list[datetime], name: PreviewEventName) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO preview_event (ts_server, schema_version, event_name, origin, trace_id,
                   thread_id, properties)
               VALUES (%s, 1, %s, 'preview_proxy', md5(random()::text), 'thread-1', '{}')""",
            [(t, name.value) for t in at],
        )


def _rollup(url: str, root: Path) -> None:
    with repository.connect(url) as conn:
        rollup(conn, root, settle_seconds=60)


def _rebuild(url: str, root: Path, day: date) -> int:
    with repository.connect(url) as conn:
        return rebuild_day(conn, root, day).rows


async def _seal_all(url: str, root: Path) -> dict[tuple[str, date], str | None]:
    conn = await repository.async_connect(url)
    async with conn:
        return {(s.dataset, s.day): s.problem for s in await seal_closed_days(conn, root)}


async def _purge(
    url: str, root: Path, dataset: str, metrics: Metrics | None = None
) -> dict[date, DayPlan]:
    conn = await repository.async_connect(url)
    async with conn:
        plans = await purge(conn, archive_root=root, store=None, metrics=metrics or Metrics())
    return {p.day: p for p in plans if p.dataset == dataset}


@pytest.fixture(name="quarantine_days")
def fx_quarantine_days(database_url: str, tmp_path: Path) -> Path:
    with connect(database_url) as conn:
        for offset in (OLD, RECENT):
            ensure_day_partitions(conn, _day(offset), 1)
            insert_quarantine(conn, [Row(at=utc_day(offset, hour=h)) for h in range(0, 24, 2)])
    root = tmp_path / "archive"
    _rollup(database_url, root)
    return root


async def test_a_day_is_sealed_once_and_any_later_write_breaks_its_seal(
    database_url: str, quarantine_days: Path
) -> None:
    root = quarantine_days
    sealed = await _seal_all(database_url, root)
    assert sealed[("quarantine", _day(OLD))] is None
    assert sealed[("quarantine", _day(RECENT))] is None
    assert _seal(database_url, "quarantine", OLD) == 12
    assert await _seal_all(database_url, root) == {}  # nothing left to seal: counted once

    old = utc_day(OLD, hour=0)
    with connect(database_url) as conn:  # a replay updates no archived column: seal kept
        conn.execute(
            "UPDATE daemon_event_quarantine SET replayed_at = now(), replay_status = 'applied' "
            "WHERE created_at >= %s AND created_at < %s",
            (old, old + timedelta(days=1)),
        )
    assert _seal(database_url, "quarantine", OLD) == 12

    with connect(database_url) as conn:  # a row committed after the day was sealed
        insert_quarantine(conn, [Row(at=utc_day(OLD, hour=23, minute=59))])
    assert _seal(database_url, "quarantine", OLD) is None
    assert _seal(database_url, "quarantine", RECENT) == 12  # other days keep theirs

    kept = (await _purge(database_url, root, "quarantine"))[_day(OLD)]
    assert not kept.purged and not kept.sealed and not kept.reconciled
    assert "differ" in str(kept.problem)
    assert _exists(database_url, repository.partition_name(_day(OLD)))

    assert await asyncio.to_thread(_rebuild, database_url, root, _day(OLD)) == 13
    done = (await _purge(database_url, root, "quarantine"))[_day(OLD)]
    assert done.purged and done.sealed and done.rows == 13
    assert not _exists(database_url, repository.partition_name(_day(OLD)))
    assert _seal(database_url, "quarantine", OLD) is None  # the seal leaves with its day


async def test_a_sealed_day_is_purged_on_its_seal_without_counting_it_again(
    database_url: str, quarantine_days: Path
) -> None:
    """Shown with the one bypass the seal cannot see (a superuser disabling the triggers): the
    purge trusts the seal and does not count the day again, which is what makes it cheap."""
    root = quarantine_days
    await _seal_all(database_url, root)
    name = repository.partition_name(_day(OLD))
    with connect(database_url) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(name)))
        insert_quarantine(conn, [Row(at=utc_day(OLD, hour=23))])
    assert _seal(database_url, "quarantine", OLD) == 12

    plan = (await _purge(database_url, root, "quarantine"))[_day(OLD)]
    assert plan.purged and plan.sealed and plan.rows == 12


async def test_the_archive_is_checked_against_the_seal_at_purge(
    database_url: str, quarantine_days: Path
) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = quarantine_days
    await _seal_all(database_url, root)
    # the archive lost an hour after the day was sealed (the closed day is one compacted file)
    day_file = root / files.compact_file(ArchiveDataset.QUARANTINE_ROWS, _day(OLD))
    table = pq.read_table(day_file)
    hours = pc.hour(table.column("created_at"))  # type: ignore[attr-defined]
    pq.write_table(table.filter(pc.not_equal(hours, 4)), day_file)  # type: ignore[attr-defined]

    plan = (await _purge(database_url, root, "quarantine"))[_day(OLD)]
    assert not plan.purged and not plan.reconciled
    assert "archive changed since the day was sealed" in str(plan.problem)
    assert plan.archived_rows == 11
    assert _exists(database_url, repository.partition_name(_day(OLD)))


async def test_an_archive_rewritten_with_the_same_content_still_purges_on_the_seal(
    database_url: str, quarantine_days: Path
) -> None:
    """Other bytes, same aggregates (a rebuild, another writer version): the fingerprint differs,
    the exact reconciliation runs and agrees, and the day goes on its seal."""
    import pyarrow.parquet as pq

    root = quarantine_days
    await _seal_all(database_url, root)
    daily = root / files.daily_file(_day(OLD))
    pq.write_table(pq.read_table(daily), daily, compression="gzip")

    plan = (await _purge(database_url, root, "quarantine"))[_day(OLD)]
    assert plan.purged and plan.sealed and plan.rows == 12
    assert plan.breakdown == {"mismatch": 12}


@pytest.fixture(name="preview_days")
def fx_preview_days(database_url: str, tmp_path: Path) -> Path:
    with connect(database_url) as conn:
        for offset in (PREVIEW_OLD, RECENT):
            ensure_day_partitions(conn, _day(offset), 1)
    for offset in (PREVIEW_OLD, RECENT):
        _insert_events(
            database_url,
            [utc_day(offset, hour=h) for h in range(0, 24, 3)],
            PreviewEventName.ACCESS_DENIED,
        )
        _insert_events(
            database_url,
            [utc_day(offset, hour=1, minute=m) for m in range(4)],
            PreviewEventName.SESSION_STATE_CHANGED,
        )
    root = tmp_path / "archive"
    _rollup(database_url, root)
    return root


def _purge_events(url: str) -> list[dict]:
    with connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT properties FROM preview_event WHERE event_name = %s", (EVENT_PURGE_EVENT,)
            ).fetchall()
        ]


def _archived_events(root: Path, day: date) -> int:
    con = files.open_archive(root)
    row = con.execute("SELECT count(*) FROM preview_events WHERE day = ?", [day]).fetchone()
    return int(row[0]) if row else 0


async def test_a_31_day_old_preview_event_day_is_dropped_after_it_reconciled(
    database_url: str, preview_days: Path
) -> None:
    root = preview_days
    metrics = Metrics()
    plans = await _purge(database_url, root, "preview_event", metrics)

    assert set(plans) == {_day(PREVIEW_OLD)}  # the 5-day-old one is not past retention
    plan = plans[_day(PREVIEW_OLD)]
    assert plan.purged and plan.sealed and plan.rows == 12 and plan.archived_rows == 12
    assert not _exists(database_url, repository.partition_name(_day(PREVIEW_OLD), "preview_event"))
    assert _exists(database_url, repository.partition_name(_day(RECENT), "preview_event"))
    [event] = _purge_events(database_url)
    assert event["day"] == str(_day(PREVIEW_OLD))
    assert event["byEventName"] == {
        PreviewEventName.ACCESS_DENIED.value: 8,
        PreviewEventName.SESSION_STATE_CHANGED.value: 4,
    }
    assert metrics.value(MetricName.EVENT_PURGE, repo="", user="", provider="", reason="") == 12
    assert await asyncio.to_thread(_archived_events, root, _day(PREVIEW_OLD)) == 12


def _cli(url: str, data_dir: Path, *args: str, terminal: bool = False) -> tuple[int, str, str]:
    """`terragon ARGS` with stdout piped, stderr piped (or a terminal): (status, stdout, stderr)."""
    env = {"DATABASE_URL": url, "TERRAGON_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return run_terragon(list(args), env, stderr_tty=terminal)


def _log_lines(stderr: str) -> list[dict]:
    """Every stderr line must be a JSON object when piped (no progress bar, no colours)."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_a_preview_event_day_that_does_not_reconcile_is_kept_and_the_log_says_what_to_do(
    database_url: str, preview_days: Path
) -> None:
    data_dir = preview_days.parent
    day = _day(PREVIEW_OLD)
    _insert_events(  # committed after the rollup passed its day
        database_url, [utc_day(PREVIEW_OLD, hour=23, minute=30)], PreviewEventName.ACCESS_DENIED
    )

    code, stdout, stderr = _cli(database_url, data_dir, "retention", "purge")
    assert code == 0, stderr
    logs = _log_lines(stderr)
    [kept] = [
        e for e in logs if e["event"] == "retention_day_kept" and e["dataset"] == "preview_event"
    ]
    assert kept["day"] == str(day) and kept["rows"] == 13
    assert "differs from Postgres in 1 group(s): 12 rows archived, 13" in kept["problem"]
    assert f"terragon archive rollup --rebuild-day {day}" in kept["hint"]
    assert _exists(database_url, repository.partition_name(day, "preview_event"))
    assert "kept 1" in stdout and "keep: archive differs" in stdout
    assert _purge_events(database_url) == []

    code, stdout, stderr = _cli(
        database_url, data_dir, "archive", "rollup", "--rebuild-day", str(day)
    )
    assert code == 0 and "rebuilt" in stdout, stderr
    code, stdout, stderr = _cli(database_url, data_dir, "retention", "purge")
    assert code == 0, stderr
    assert "purged 1 (13 row(s)), kept 0" in stdout
    assert any(
        e["event"] == "retention_day_purged" and e["dataset"] == "preview_event"
        for e in _log_lines(stderr)
    )
    assert not _exists(database_url, repository.partition_name(day, "preview_event"))
    assert [e["rows"] for e in _purge_events(database_url)] == [13]


def test_rollup_piped_reports_its_totals_and_purge_shows_bars_in_a_terminal(
    database_url: str, tmp_path: Path
) -> None:
    with connect(database_url) as conn:
        for offset in (OLD, RECENT):
            ensure_day_partitions(conn, _day(offset), 1)
            insert_quarantine(conn, [Row(at=utc_day(offset, hour=h)) for h in range(0, 24, 2)])

    code, stdout, stderr = _cli(database_url, tmp_path, "archive", "rollup")
    assert code == 0, stderr
    assert "24 row(s) (quarantine 24, preview_event 0)" in stdout
    assert "archive_rolled_up" in [e["event"] for e in _log_lines(stderr)]  # JSON, no bar

    code, stdout, terminal = _cli(database_url, tmp_path, "retention", "purge", terminal=True)
    assert code == 0, terminal
    assert "sealing archived days" in terminal and "purging days past retention" in terminal
    assert "retention_day_purged" in terminal  # the logs are there too, for a person
    assert "2 day(s) past retention: purged 2 (12 row(s)), kept 0" in stdout
    assert not _exists(database_url, repository.partition_name(_day(OLD)))
