"""The periodic jobs the service runs in-process (when `TERRAGON_BACKGROUND_JOBS` is on).

Domains add their job here. The scheduler runs each once per time slot across replicas (a
claim in `job_slot`); each job also takes its advisory lock against a concurrent CLI run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from terragon_core import MAINTENANCE_INTERVAL_SECONDS
from terragon_ingest.archive.tasks import (
    RETENTION_INTERVAL_SECONDS,
    ROLLUP_INTERVAL_SECONDS,
    archive_rollup_job,
    retention_purge_job,
)
from terragon_ingest.daemon_events import sweep
from terragon_ingest.db import unbounded
from terragon_ingest.db.partitions import ensure_partitions_async
from terragon_ingest.lifecycle.scheduler import PeriodicJob

if TYPE_CHECKING:
    from terragon_ingest.lifecycle.deps import LifecycleDeps


async def ensure_day_partitions(deps: LifecycleDeps) -> int:
    """Keep a week of day partitions ahead for the partitioned tables."""
    async with unbounded(deps.pool) as conn:  # DDL may wait for locks: no statement timeout
        return await ensure_partitions_async(conn)


async def maintenance_sweep(deps: LifecycleDeps) -> object:
    return await sweep(deps.daemon_events)


async def archive_rollup(deps: LifecycleDeps) -> object:
    return await archive_rollup_job(deps.archive)


async def retention_purge(deps: LifecycleDeps) -> object:
    return await retention_purge_job(deps.archive)


def periodic_jobs() -> list[PeriodicJob]:
    """Each job is handed its own domain's deps (the scheduler holds them all)."""
    return [
        PeriodicJob("ensure_day_partitions", 3600, ensure_day_partitions),
        PeriodicJob("maintenance_sweep", MAINTENANCE_INTERVAL_SECONDS, maintenance_sweep),
        PeriodicJob("archive_rollup", ROLLUP_INTERVAL_SECONDS, archive_rollup),
        PeriodicJob("retention_purge", RETENTION_INTERVAL_SECONDS, retention_purge),
    ]
