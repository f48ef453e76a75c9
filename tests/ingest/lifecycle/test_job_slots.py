"""The scheduler's slot claim: of any number of replicas claiming one job's slot at once, exactly
one runs it; a failed run is recorded as such; slot boundaries are the same on every replica."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from litestar.testing import AsyncTestClient

from terragon_ingest.app import create_app
from terragon_ingest.lifecycle.scheduler import PeriodicJob, next_slot, run_slot
from tests.fixtures.daemon_events import sql

SLOT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_slot_boundaries_are_aligned_to_the_epoch() -> None:
    assert next_slot(60, 119.9) == 120
    assert next_slot(60, 120.0) == 180  # strictly after: a slot just run is not run again
    assert next_slot(3600, 7200.5) == 10800


async def test_one_of_the_replicas_claiming_a_slot_runs_it(settings, database_url) -> None:
    ran: list[int] = []
    failing = PeriodicJob("test_failing", 60, lambda _: asyncio.sleep(0, result=1 / 0))

    async with (
        AsyncTestClient(app=create_app(settings, run_migrate=False)) as a,
        AsyncTestClient(app=create_app(settings, run_migrate=False)) as b,
    ):
        replicas = [a.app.state.lifecycle, b.app.state.lifecycle]

        async def job(deps: object) -> None:
            ran.append(replicas.index(deps))

        counted = PeriodicJob("test_counted", 60, job)
        results = await asyncio.gather(*(run_slot(s, counted, SLOT) for s in replicas * 4))
        assert sum(results) == 1 and len(ran) == 1
        # The next slot is a new claim (whoever wins it).
        assert sum(await asyncio.gather(*(run_slot(s, counted, next_slot_dt()) for s in replicas)))
        assert len(ran) == 2
        # A job that raises: the slot is spent (not retried within it) and marked failed.
        assert await run_slot(replicas[0], failing, SLOT) is True
        assert await run_slot(replicas[1], failing, SLOT) is False
    rows = await sql(
        database_url, "SELECT job, failed, finished_at IS NOT NULL AS done FROM job_slot ORDER BY 1"
    )
    assert [(r["job"], r["failed"], r["done"]) for r in rows] == [
        ("test_counted", False, True),
        ("test_counted", False, True),
        ("test_failing", True, True),
    ]


def next_slot_dt() -> datetime:
    return datetime.fromtimestamp(next_slot(60, SLOT.timestamp()), UTC)
