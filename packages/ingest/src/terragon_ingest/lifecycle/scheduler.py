"""Run periodic jobs inside the service, once per time slot across replicas.

Time is cut into slots of each job's interval, aligned to the Unix epoch, so every replica's
slots start at the same instants. At each boundary every replica claims the slot in Postgres
(`job_slot`, primary key `(job, slot_start)`); the one whose row lands runs the job, the others
skip it. N replicas therefore run the sweep, the rollup and retention once per slot, not N times.
A replica killed after its claim loses that slot's run; the next slot (any replica) catches up,
as every job works from durable state (watermarks, statuses), never from "what the last run did".
Clocks: the slot is computed from the replica's clock; a skew smaller than the interval only
changes which replica wins. Each job still takes its own advisory lock, so a CLI run or a slot
that overruns into the next never runs concurrently with it.

The scheduler only paces the jobs and keeps one failure from stopping the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from terragon_ingest.db import connection
from terragon_ingest.lifecycle import repository

if TYPE_CHECKING:
    from terragon_ingest.db import Pool
    from terragon_ingest.lifecycle.deps import LifecycleDeps

log = structlog.get_logger()

JobFn = Callable[["LifecycleDeps"], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: JobFn


def replica_name() -> str:
    """Who claimed a slot (`job_slot.claimed_by`): host and process, for the operator."""
    return f"{socket.gethostname()}:{os.getpid()}"


def next_slot(interval: float, now: float) -> float:
    """The start (epoch seconds) of the first slot boundary strictly after `now`."""
    return (math.floor(now / interval) + 1) * interval


async def _claim(pool: Pool, job: PeriodicJob, slot: datetime) -> bool:
    async with connection(pool) as conn:
        return await repository.claim_job_slot(conn, job.name, slot, replica_name())


async def _finish(pool: Pool, job: PeriodicJob, slot: datetime, *, failed: bool) -> None:
    with contextlib.suppress(Exception):  # bookkeeping only: the job's effect is already durable
        async with connection(pool) as conn:
            await repository.finish_job_slot(conn, job.name, slot, failed=failed)


async def run_slot(deps: LifecycleDeps, job: PeriodicJob, slot: datetime) -> bool:
    """Claim `slot` for `job` and run it if this replica won; True when it ran (or failed)."""
    try:
        if not await _claim(deps.pool, job, slot):
            log.debug("job_slot_taken", job=job.name, slot=slot.isoformat())
            return False
    except Exception as exc:
        log.warning(
            "job_slot_unclaimed",
            job=job.name,
            slot=slot.isoformat(),
            error=str(exc),
            hint="PostgreSQL is unreachable; the job runs at a later slot",
        )
        return False
    failed = False
    try:
        result = await job.run(deps)
        log.debug("job_ran", job=job.name, slot=slot.isoformat(), result=str(result))
    except Exception as exc:
        failed = True
        log.error(
            "job_failed",
            job=job.name,
            slot=slot.isoformat(),
            error=str(exc),
            exc_info=exc,
            hint="the job retries at its next slot; check /readyz",
        )
    await _finish(deps.pool, job, slot, failed=failed)
    return True


async def _loop(
    job: PeriodicJob, interval: float, deps: LifecycleDeps, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        boundary = next_slot(interval, time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, boundary - time.time()))
        if stop.is_set():
            return
        await run_slot(deps, job, datetime.fromtimestamp(boundary, UTC))


class Scheduler:
    def __init__(self, jobs: list[PeriodicJob], *, interval_override: float | None = None) -> None:
        self.jobs = jobs
        self.interval_override = interval_override
        """`TERRAGON_JOB_INTERVAL_SECONDS`: every job on this interval (tests, demos)."""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, deps: LifecycleDeps) -> None:
        self._tasks = [
            asyncio.create_task(
                _loop(job, self.interval_override or job.interval_seconds, deps, self._stop),
                name=f"job:{job.name}",
            )
            for job in self.jobs
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
