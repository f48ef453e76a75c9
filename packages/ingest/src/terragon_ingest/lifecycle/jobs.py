"""The periodic jobs the service runs in-process (when `TERRAGON_BACKGROUND_JOBS` is on).

Domains add their job here; each job makes itself unique across replicas (advisory lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from terragon_ingest.db.partitions import ensure_partitions_async
from terragon_ingest.lifecycle.scheduler import PeriodicJob

if TYPE_CHECKING:
    from terragon_ingest.services import Services


async def ensure_day_partitions(services: Services) -> int:
    """Keep a week of day partitions ahead for the partitioned tables."""
    async with services.pool.connection() as conn:
        return await ensure_partitions_async(conn)


def periodic_jobs() -> list[PeriodicJob]:
    return [
        PeriodicJob("ensure_day_partitions", 3600, ensure_day_partitions),
    ]
