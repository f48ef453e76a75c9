"""The migration runner against real PostgreSQL: from empty, idempotent, concurrent, immutable."""

from __future__ import annotations

import threading

import psycopg
import pytest

from terragon_ingest.app import run_migrations
from terragon_ingest.db.migrate import load_functions, load_migrations, migrate
from terragon_ingest.db.pool import CONNECTION_KWARGS
from terragon_ingest.errors import MigrationError


def test_names_are_sortable_timestamps_and_unique() -> None:
    names = [m.name for m in load_migrations()]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert names[0].endswith("_foundation.sql")


def test_from_empty_to_head_then_nothing_to_do(empty_url: str) -> None:
    applied = run_migrations(empty_url)
    assert applied == [m.name for m in load_migrations()] + [f.name for f in load_functions()]
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
    assert sorted(applied) == sorted(
        [m.name for m in load_migrations()] + [f.name for f in load_functions()]
    )


def test_an_edited_migration_is_refused(empty_url: str) -> None:
    run_migrations(empty_url)
    first = load_migrations()[0].name
    with psycopg.connect(empty_url, **CONNECTION_KWARGS) as conn:  # type: ignore[arg-type]
        conn.execute("UPDATE schema_migration SET checksum = 'x' WHERE name = %s", (first,))
        with pytest.raises(MigrationError, match="immutable"):
            migrate(conn)


def test_a_changed_function_file_is_reapplied_and_old_overloads_dropped(empty_url: str) -> None:
    """Function files are repeatable: a checksum that differs re-applies the file, and every other
    overload of the name is dropped first (no call can reach an old signature)."""
    run_migrations(empty_url)
    with psycopg.connect(empty_url, **CONNECTION_KWARGS) as conn:  # type: ignore[arg-type]
        conn.execute(
            "CREATE FUNCTION terragon_envelope_verdict(old integer) RETURNS text "
            "LANGUAGE sql AS $$ SELECT 'stale' $$"
        )
        conn.execute(
            "UPDATE schema_function SET checksum = 'x' WHERE name = 'terragon_envelope_verdict.sql'"
        )
        assert migrate(conn) == ["terragon_envelope_verdict.sql"]
        overloads = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'terragon_envelope_verdict'"
        ).fetchone()
        assert overloads == (1,)
        assert migrate(conn) == []
