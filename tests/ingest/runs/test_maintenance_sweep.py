"""The maintenance backstop: stale runs and runs whose terminal envelope lacked endSha are
finalized exactly once (two replicas racing, and the writer racing itself without the lock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from terragon_core import MetricName
from terragon_ingest.app import create_app
from terragon_ingest.runs.service import finalize_stale_runs
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.daemon_events import envelope, post, run_state, sql
from tests.fixtures.runs import start_run


@pytest.fixture(name="replica_app")
def fx_replica_app(settings):
    return create_app(settings, run_migrate=False)


@pytest.fixture(name="replica")
async def fx_replica(replica_app) -> AsyncIterator[AsyncTestClient]:
    """A second ingest replica on the same database and Valkey."""
    async with AsyncTestClient(app=replica_app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        yield client


async def _run_missing_end_sha(client, database_url) -> tuple[str, str]:
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    terminal = envelope(run_id, 2, messages=[{"type": "result"}])
    assert (await post(client, terminal, token)).json()["reason"] == "missing_end_sha"
    return run_id, token


async def test_run_missing_end_sha_is_finalized_after_the_grace_window_exactly_once(
    client, replica, app, replica_app, database_url
) -> None:
    run_id, token = await _run_missing_end_sha(client, database_url)
    nothing = await client.post("/api/internal/maintenance/sweep")
    assert nothing.json()["finalizedRuns"] == 0  # still inside the grace window
    await sql(
        database_url, "UPDATE thread_run SET missing_end_sha_at = now() - interval '6 minutes'"
    )
    results = await asyncio.gather(
        client.post("/api/internal/maintenance/sweep"),
        replica.post("/api/internal/maintenance/sweep"),
        client.post("/api/internal/maintenance/sweep"),
    )
    bodies = [r.json() for r in results]
    assert sum(b["finalizedRuns"] for b in bodies) == 1
    run = await run_state(client, run_id)
    assert (run["status"], run["finishReason"], run["diffSource"]) == (
        "failed",
        "missing_end_sha_timeout",
        "working-tree-fallback",
    )
    assert "grace window" in run["diffSourceContext"]
    [pointer] = await sql(database_url, "SELECT active_run_id, version FROM thread_run_context")
    assert pointer["active_run_id"] is None  # released
    [event] = await sql(
        database_url, "SELECT run_id FROM preview_event WHERE event_name = 'preview.run.finalized'"
    )
    assert event["run_id"] == run_id
    # The daemon's late terminal is now a zombie: quarantined, never applied.
    late = await post(
        client, envelope(run_id, 3, messages=[{"type": "result"}], endSha="f" * 40), token
    )
    assert (late.status_code, late.json()["reason"]) == (202, "mismatch")
    assert (await run_state(client, run_id))["terminalEventId"] is None
    finalized = sum(
        a.state.health.metrics.value(MetricName.RUN_FINALIZED, repo="acme/web", user="user-1",
                                       provider="manual", reason="missing_end_sha_timeout")
        for a in (app, replica_app)
    )  # fmt: skip
    assert finalized == 1


async def test_silent_run_is_finalized_after_the_stale_window(client, database_url) -> None:
    quiet_run, _ = await start_run(client, thread_id="thread-quiet")
    busy_run, busy_token = await start_run(client)
    assert (await post(client, envelope(busy_run, 1), busy_token)).status_code == 200
    await sql(database_url, "UPDATE thread_run SET started_at = now() - interval '2 hours'")
    body = (await client.post("/api/internal/maintenance/sweep")).json()
    assert body["finalizedRunIds"] == [quiet_run]
    assert (await run_state(client, quiet_run))["status"] == "failed"
    assert (await run_state(client, busy_run))["status"] == "running"  # it spoke recently


async def test_the_writer_is_exactly_once_even_without_the_sweep_lock(client, database_url) -> None:
    run_id, _ = await start_run(client)
    await sql(database_url, "UPDATE thread_run SET started_at = now() - interval '2 hours'")

    async def finalize() -> int:
        conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        async with conn, conn.transaction():
            rows = await finalize_stale_runs(conn, stale_seconds=1800, grace_seconds=300)
        return len(rows)

    counts = await asyncio.gather(*(finalize() for _ in range(4)))
    assert sum(counts) == 1
    assert (await run_state(client, run_id))["finishReason"] == "missing_end_sha_timeout"
