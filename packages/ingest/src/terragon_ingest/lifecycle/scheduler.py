"""Run periodic jobs inside the service. Each job takes its own advisory lock where it must be
unique across replicas; the scheduler only paces them and keeps one failure from stopping the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from terragon_ingest.services import Services

log = structlog.get_logger()

JobFn = Callable[["Services"], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: JobFn


async def _loop(job: PeriodicJob, services: Services, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=job.interval_seconds)
        if stop.is_set():
            return
        try:
            result = await job.run(services)
            log.debug("job_ran", job=job.name, result=str(result))
        except Exception as exc:
            log.error(
                "job_failed",
                job=job.name,
                error=str(exc),
                exc_info=exc,
                hint="the job retries on its next interval; check /readyz",
            )


class Scheduler:
    def __init__(self, jobs: list[PeriodicJob]) -> None:
        self.jobs = jobs
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, services: Services) -> None:
        self._tasks = [
            asyncio.create_task(_loop(job, services, self._stop), name=f"job:{job.name}")
            for job in self.jobs
        ]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
