"""The archive's periodic jobs (registered in `lifecycle/jobs.py`) and their blocking bodies,
which the CLI calls directly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from terragon_ingest.archive import location, repository
from terragon_ingest.archive.retention import DayPlan, purge
from terragon_ingest.archive.rollup import RollupResult, rollup
from terragon_ingest.db import unbounded
from terragon_ingest.kit.installation import installation_flags
from terragon_ingest.kit.progress import NO_PROGRESS
from terragon_ingest.telemetry.alerts import evaluate_alerts

if TYPE_CHECKING:
    from terragon_ingest.archive.deps import ArchiveDeps
    from terragon_ingest.kit.progress import Progress
    from terragon_ingest.settings import Settings

ROLLUP_INTERVAL_SECONDS = 60
RETENTION_INTERVAL_SECONDS = 3600


def run_rollup(
    settings: Settings, *, alerts: bool = True, progress: Progress = NO_PROGRESS
) -> RollupResult:
    """One rollup, then the alert hooks (blocking: the job runs it in a worker thread)."""
    assert settings.db.URL, "DATABASE_URL is required"
    root = location.from_settings(settings)
    with repository.connect(settings.db.URL) as conn:
        result = rollup(
            conn, root, settle_seconds=settings.archive.SETTLE_SECONDS, progress=progress
        )
        if alerts and result.locked and result.end and settings.server.ALERT_WEBHOOK_URL:
            evaluate_alerts(conn, settings.server.ALERT_WEBHOOK_URL, result.end)
    return result


async def archive_rollup_job(deps: ArchiveDeps) -> RollupResult:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(run_rollup, deps.settings)


async def retention_purge_job(deps: ArchiveDeps) -> list[DayPlan]:
    settings = deps.settings
    async with unbounded(deps.pool) as conn:  # not under the request path's statement timeout
        return await purge(
            conn,
            archive_root=location.from_settings(settings),
            store=deps.objects,
            metrics=deps.metrics,
            where=installation_flags(settings),
        )
