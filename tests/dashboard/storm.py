"""A seeded installation with a quarantine storm three days ago, for the dashboard's "one truth"
tests (issue 24): rows in the test PostgreSQL, rolled up into `<data dir>/archive`, offloaded
payloads in `<data dir>/objects`, and the `up.json` `terragon up` writes, so the commands the
dashboard prints with `--data-dir` find the installation as they would on `terragon up`."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from terragon_core import UP_STATE_FILE, QuarantineReason
from terragon_ingest.archive import repository
from terragon_ingest.archive.rollup import rollup
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day

R = QuarantineReason
STORM_REPO = "acme/storm"
"""Floods `missing_run_id` on the storm day: 10 per minute for 6 minutes."""
NOISY_REPO = "acme/noisy"
"""More rows than the storm that day, nearly all `legacy_mode`: first when ranked by all reasons."""
OLD_REPO = "acme/old"
"""Its storm-day rows are in the archive only (PostgreSQL no longer holds them)."""
LIVE_REPO = "acme/live"
PAYLOAD_MARKER = "whole-payload-beyond-the-2k-prefix"


@dataclass(frozen=True)
class Storm:
    database_url: str
    data_dir: Path
    day: date
    storm_ids: list[str]
    """Newest first; the newest is offloaded (its whole payload is in the object store)."""
    old_ids: list[str]

    @property
    def archive(self) -> Path:
        return self.data_dir / "archive"


def _payload(thread_id: str) -> str:
    body = {"threadId": thread_id, "payloadVersion": 1, "messages": [], "pad": "x" * 4000}
    return json.dumps(body | {"marker": PAYLOAD_MARKER})


def seed_storm(database_url: str, data_dir: Path) -> Storm:
    day_at = utc_day(-3, hour=14)
    storm = [
        Row(at=day_at + timedelta(seconds=6 * i), reason=R.MISSING_RUN_ID, repo=STORM_REPO)
        for i in range(60)
    ]
    newest = storm[-1]
    newest.thread_id = "thread-storm"
    newest.offloaded = True
    newest.payload = _payload(newest.thread_id)
    noisy = [
        Row(at=utc_day(-3, hour=10) + timedelta(seconds=30 * i), reason=reason, repo=NOISY_REPO)
        for i, reason in enumerate(
            [R.LEGACY_MODE] * 100 + [R.MISMATCH] * 10 + [R.MISSING_RUN_ID] * 4
        )
    ]
    old = [
        Row(at=utc_day(-3, hour=9, minute=i), reason=R.MISSING_RUN_ID, repo=OLD_REPO)
        for i in range(6)
    ]
    other_days = [
        Row(at=utc_day(-2, hour=8, minute=i), reason=R.LEGACY_MODE, repo=NOISY_REPO)
        for i in range(10)
    ] + [
        Row(at=utc_day(-1, hour=8, minute=i), reason=R.MISSING_END_SHA, repo=STORM_REPO)
        for i in range(5)
    ]
    now = datetime.now(UTC)
    live = [
        Row(at=now - timedelta(minutes=2 + i), reason=R.MISSING_RUN_ID, repo=LIVE_REPO)
        for i in range(8)
    ]
    with connect(database_url) as conn:
        ensure_day_partitions(conn, utc_day(-3).date(), 4)
        insert_quarantine(conn, storm + noisy + old + other_days + live)
        # the storm's newest row has a thread, so its replay runs the decision to the end
        conn.execute(
            """INSERT INTO thread (thread_id, user_id, repo_full_name, sandbox_provider,
                   codesandbox_id) VALUES (%s, 'user-1', %s, 'docker', 'sb-storm')""",
            (newest.thread_id, STORM_REPO),
        )
    assert newest.object_key and newest.payload
    obj = data_dir / "objects" / newest.object_key
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text(newest.payload)
    with repository.connect(database_url) as conn:
        assert rollup(conn, data_dir / "archive", settle_seconds=60).rows["quarantine"] > 200
    with psycopg.connect(database_url, autocommit=True) as conn:  # past retention: archive only
        conn.execute(
            "DELETE FROM daemon_event_quarantine WHERE id = ANY(%s::uuid[])",
            ([r.id for r in old],),
        )
    # what `terragon up` writes into its data directory: how `--data-dir` finds the database
    (data_dir / UP_STATE_FILE).write_text(
        json.dumps({"pid": os.getpid(), "databaseUrl": database_url, "valkeyUrl": None})
    )
    return Storm(
        database_url=database_url,
        data_dir=data_dir,
        day=day_at.date(),
        storm_ids=[r.id for r in reversed(storm)],
        old_ids=[r.id for r in reversed(old)],
    )


@contextlib.contextmanager
def storm_database(pg_admin_url: str, template_database: str) -> Iterator[str]:
    """A database of its own for a module's tests (the `database_url` fixture is per test)."""
    from tests.conftest import _with_database

    name = f"storm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')  # type: ignore[arg-type]
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def clean_env() -> dict[str, str]:
    """The environment a printed command runs in: no URL or data directory of the test's, so
    the command finds the installation from what it prints alone."""
    drop = {"DATABASE_URL", "VALKEY_URL", "TERRAGON_DATA_DIR", "TERRAGON_ARCHIVE_DIR"}
    drop |= {"TERRAGON_ARCHIVE_URL", "OBJECT_STORE_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop}
