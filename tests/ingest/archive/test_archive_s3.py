"""The archive and offloaded payloads on a real S3 API (moto's server, or TERRAGON_TEST_S3_URL):
the rollup publishes whole Parquet objects, `terragon archive sql` reads them from another
process, retention reconciles against the bucket (and refuses what does not reconcile), an
oversized payload goes to the bucket, `terragon quarantine show --payload` reads it back and
retention deletes it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from terragon_core import QuarantineReason
from terragon_ingest.archive import repository
from terragon_ingest.archive.location import ArchiveLocation, ObjectArchive, open_archive
from terragon_ingest.archive.retention import purge
from terragon_ingest.archive.rollup import rebuild_day, rollup
from terragon_ingest.objects import QuarantineObjects, open_store
from terragon_ingest.settings import ObjectStoreSettings, Settings
from terragon_ingest.telemetry import Metrics
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tests.fixtures.daemon_events import envelope, post, sql
from tests.fixtures.runs import start_run
from tests.fixtures.settings import settings_for
from tests.ingest.archive.test_archive_rollup import (
    _assert_archive_equals_postgres,
    _postgres_groups,
    _seed_days,
)
from tools.s3_server import S3Target

TERRAGON = str(Path(sys.executable).parent / "terragon")
R = QuarantineReason
OLD, OLDER = -35, -40


def _archive(s3: S3Target) -> ObjectArchive:
    return ObjectArchive(f"{s3.url}/archive", ObjectStoreSettings())


def _objects(s3: S3Target) -> QuarantineObjects:
    url = f"{s3.url}/objects"
    return QuarantineObjects(open_store(url, ObjectStoreSettings()), url)


def _terragon(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """The real CLI in a process of its own (a host that shares nothing with the writer but the
    bucket); its environment is this test's (the bucket's endpoint and key) plus `env`."""
    return subprocess.run(
        [TERRAGON, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_rollup_publishes_whole_objects_and_archive_sql_reads_them_from_another_process(
    database_url: str, s3: S3Target, tmp_path: Path
) -> None:
    _seed_days(database_url)
    with repository.connect(database_url) as conn:
        first = rollup(conn, _archive(s3), settle_seconds=60)
    assert first.end is not None and first.rows["quarantine"] >= 90
    keys = s3.child("archive").list_keys()
    assert keys and all(k.endswith(".parquet") for k in keys), keys  # no temporary object
    days = {k.split("/")[1] for k in keys if k.startswith("quarantine_daily/")}
    assert {f"day={utc_day(o).date()}" for o in (-3, -2, -1)} <= days
    assert not (tmp_path / "archive").exists()  # nothing was written to a local archive
    _assert_archive_equals_postgres(database_url, _archive(s3), first.end)

    with repository.connect(database_url) as conn:
        again = rollup(conn, _archive(s3), settle_seconds=60)
    assert again.rows == {"quarantine": 0, "preview_event": 0}
    assert s3.child("archive").list_keys() == keys
    _assert_archive_equals_postgres(database_url, _archive(s3), first.end)

    expected = sum(_postgres_groups(database_url, first.end).values())
    result = _terragon(
        "archive",
        "sql",
        "--format",
        "json",
        "SELECT sum(quarantined)::BIGINT AS n, count(DISTINCT day) AS days FROM quarantine_daily",
        cwd=tmp_path,
        env={"TERRAGON_ARCHIVE_URL": f"{s3.url}/archive"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": expected, "days": len(days)}]


def test_archive_rollup_command_writes_to_the_bucket(
    database_url: str, s3: S3Target, tmp_path: Path
) -> None:
    _seed_days(database_url)
    env = {"DATABASE_URL": database_url, "TERRAGON_ARCHIVE_URL": f"{s3.url}/archive"}
    result = _terragon("archive", "rollup", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"{s3.url}/archive" in result.stdout
    con = open_archive(_archive(s3))
    row = con.execute("SELECT count(*) FROM quarantine_rows").fetchone()
    assert row is not None and row[0] >= 90


def _seed_retention(url: str, store: QuarantineObjects) -> list[Row]:
    rows: list[Row] = []
    with connect(url) as conn:
        for offset in (OLDER, OLD):
            ensure_day_partitions(conn, utc_day(offset).date(), 1)
            rows += [
                Row(
                    at=utc_day(offset, hour=i * 2, minute=i),
                    reason=(R.MISMATCH, R.LEGACY_MODE)[i % 2],
                    offloaded=i % 3 == 0,
                )
                for i in range(9)
            ]
        insert_quarantine(conn, rows)
    return rows


def _rollup(url: str, where: ArchiveLocation) -> None:
    with repository.connect(url) as conn:
        rollup(conn, where, settle_seconds=60)


def _rebuild(url: str, where: ObjectArchive, day: date) -> int:
    with repository.connect(url) as conn:
        return rebuild_day(conn, where, day).rows


def _daily_totals(where: ObjectArchive) -> list[tuple]:
    con = open_archive(where)
    return con.execute(
        "SELECT day, sum(quarantined)::BIGINT FROM quarantine_daily GROUP BY day ORDER BY day"
    ).fetchall()


async def _purge(url: str, s3: S3Target, store: QuarantineObjects):
    conn = await repository.async_connect(url)
    async with conn:
        return await purge(conn, archive_root=_archive(s3), store=store, metrics=Metrics())


def _late_row(url: str, offset: int) -> None:
    """A row of an archived day that committed after the rollup copied the day."""
    with connect(url) as conn:
        insert_quarantine(conn, [Row(at=utc_day(offset, hour=23, minute=59))])


async def test_retention_reconciles_against_the_bucket_and_keeps_a_day_that_does_not(
    database_url: str, s3: S3Target
) -> None:
    store = _objects(s3)
    rows = _seed_retention(database_url, store)
    for row in rows:
        if row.object_key:
            await store.put(row.object_key, b"{}")
    await asyncio.to_thread(_rollup, database_url, _archive(s3))
    _late_row(database_url, OLD)

    plans = {p.day: p for p in await _purge(database_url, s3, store) if p.dataset == "quarantine"}
    older, old = plans[utc_day(OLDER).date()], plans[utc_day(OLD).date()]
    assert older.reconciled and older.purged and older.archived_rows == 9
    assert not old.reconciled and not old.purged
    assert "archive differs from Postgres in 1 group(s)" in str(old.problem)
    objects = s3.child("objects").list_keys()
    # the purged day's payloads left the bucket; the kept day's stayed
    assert [r.object_key for r in rows if r.object_key and r.at.date() == older.day]
    assert not any(r.object_key in objects for r in rows if r.at.date() == older.day)
    kept = sorted(r.object_key for r in rows if r.object_key and r.at.date() == old.day)
    assert kept and sorted(k for k in objects if k in kept) == kept

    assert await asyncio.to_thread(_rebuild, database_url, _archive(s3), old.day) == 10
    again = {p.day: p for p in await _purge(database_url, s3, store) if p.dataset == "quarantine"}
    assert again[old.day].reconciled and again[old.day].purged
    assert s3.child("objects").list_keys() == []
    # the archive in the bucket still answers for both purged days
    totals = await asyncio.to_thread(_daily_totals, _archive(s3))
    assert totals == [(older.day, 9), (old.day, 10)]


@pytest.fixture(name="settings")
def fx_settings(database_url: str, valkey_url: str, tmp_path: Path, s3: S3Target) -> Settings:
    """The service with its payload store and archive in the bucket."""
    base = settings_for(database_url, valkey_url, tmp_path)
    return dataclasses.replace(
        base,
        objects=dataclasses.replace(base.objects, URL=f"{s3.url}/objects"),
        archive=dataclasses.replace(base.archive, URL=f"{s3.url}/archive"),
    )


async def test_oversized_payload_goes_to_the_bucket_is_shown_and_leaves_with_its_day(
    client, app, database_url: str, s3: S3Target, settings: Settings, tmp_path: Path
) -> None:
    from terragon_ingest.archive.location import from_settings

    _, token = await start_run(client)
    text = "payload-on-s3 " + "ü" * 20_000
    large = envelope("zombie", 1, messages=[{"type": "assistant", "text": text}])
    assert (await post(client, large, token)).status_code == 202
    [row] = await sql(database_url, "SELECT id, payload_object_key FROM daemon_event_quarantine")
    key = row["payload_object_key"]
    assert key and s3.child("objects").list_keys() == [key]

    env = {"DATABASE_URL": database_url, "OBJECT_STORE_URL": f"{s3.url}/objects"}
    shown = _terragon("quarantine", "show", "--payload", str(row["id"]), cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["messages"][0]["text"] == text

    # The row's day passes retention: it moves 40 days back (into that day's partition).
    day = (datetime.now(UTC) - timedelta(days=40)).date()
    with connect(database_url) as conn:
        ensure_day_partitions(conn, day, 1)
        conn.execute(
            "UPDATE daemon_event_quarantine SET created_at = created_at - interval '40 days'"
        )
    where = await asyncio.to_thread(from_settings, settings)
    await asyncio.to_thread(_rollup, database_url, where)
    store = app.state.daemon_events.objects
    conn = await repository.async_connect(database_url)
    async with conn:
        plans = await purge(conn, archive_root=where, store=store, metrics=Metrics())
    quarantine_days = [p for p in plans if p.dataset == "quarantine"]
    assert [(p.day, p.reconciled, p.purged, p.objects) for p in quarantine_days] == [
        (day, True, True, [key])
    ]
    assert s3.child("objects").list_keys() == []
    gone = _terragon("quarantine", "show", str(row["id"]), cwd=tmp_path, env=env)
    assert gone.returncode != 0


def test_the_rollup_job_writes_to_the_bucket_and_evaluates_the_alert_hooks(
    database_url: str, valkey_url: str, tmp_path: Path, s3: S3Target
) -> None:
    """`run_rollup` (the periodic job's body) with `TERRAGON_ARCHIVE_URL` set: the archive lands
    in the bucket, none in the data dir, and the alert hooks still fire after it."""
    from terragon_core import ACCESS_DENIED_ALERT, QUARANTINE_ALERT
    from terragon_ingest.archive.tasks import run_rollup
    from tests.ingest.telemetry.test_alert_hooks import Receiver, _storm

    receiver = Receiver()
    receiver.thread.start()
    try:
        base = settings_for(database_url, valkey_url, tmp_path, ALERT_WEBHOOK_URL=receiver.url)
        settings = dataclasses.replace(
            base, archive=dataclasses.replace(base.archive, URL=f"{s3.url}/archive")
        )
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        _storm(database_url, now - timedelta(minutes=1))
        result = run_rollup(settings)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
    assert result.rows["quarantine"] > 0
    assert {p["alert"] for p in receiver.posts} == {QUARANTINE_ALERT, ACCESS_DENIED_ALERT}
    assert any(k.startswith("quarantine_daily/") for k in s3.child("archive").list_keys())
    assert not (tmp_path / "archive").exists()
