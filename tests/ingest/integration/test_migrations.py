"""The migration runner against real PostgreSQL: from empty, idempotent, concurrent, immutable."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from terragon_ingest.app import run_migrations
from terragon_ingest.db.migrate import load_migrations, migrate
from terragon_ingest.db.pool import CONNECTION_KWARGS
from terragon_ingest.errors import MigrationError
from tests.conftest import _with_database


@pytest.fixture(name="empty_url")
def fx_empty_url(pg_admin_url: str) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    yield _with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def test_names_are_sortable_timestamps_and_unique() -> None:
    names = [m.name for m in load_migrations()]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert names[0].endswith("_foundation.sql")


def test_from_empty_to_head_then_nothing_to_do(empty_url: str) -> None:
    applied = run_migrations(empty_url)
    assert applied == [m.name for m in load_migrations()]
    assert run_migrations(empty_url) == []
    with psycopg.connect(empty_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert {
        "thread",
        "thread_run",
        "thread_run_context",
        "daemon_token",
        "daemon_event",
        "run_message",
        "thread_ui_validation",
        "feature_flag",
    } <= tables
    # Day partitions exist from yesterday to a week ahead, beside the DEFAULT catch-all.
    assert sum(t.startswith("daemon_event_quarantine_p") for t in tables) >= 9
    assert sum(t.startswith("preview_event_p") for t in tables) >= 9


def test_two_processes_migrating_at_once_apply_each_migration_once(empty_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(run_migrations(empty_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    applied = [name for r in results for name in r]
    assert sorted(applied) == [m.name for m in load_migrations()]


def test_an_edited_migration_is_refused(empty_url: str) -> None:
    run_migrations(empty_url)
    first = load_migrations()[0].name
    with psycopg.connect(empty_url, **CONNECTION_KWARGS) as conn:  # type: ignore[arg-type]
        conn.execute("UPDATE schema_migration SET checksum = 'x' WHERE name = %s", (first,))
        with pytest.raises(MigrationError, match="immutable"):
            migrate(conn)
