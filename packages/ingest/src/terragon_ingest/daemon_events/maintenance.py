"""The maintenance backstop (CONTRACT §4): every 60 s in-process, `POST
/api/internal/maintenance/sweep`, and `terragon maintenance sweep` for cron.

One sweeper across replicas: the sweep's transaction takes `pg_try_advisory_xact_lock
(MAINTENANCE_SWEEP_LOCK)`; a replica that does not get it does nothing. It finalizes runs that
stopped talking (no accepted envelope for the stale window) or whose terminal envelope was
quarantined for a missing `endSha` longer than the grace window ago, through the run-context
writer `finalize_stale_runs` (exactly once even without the lock: its UPDATE re-checks status).
Then it removes offloaded quarantine objects whose row never committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from valkey.exceptions import ValkeyError

from terragon_core import (
    RUN_FINALIZED_EVENT,
    EventOrigin,
    FinishReason,
    MetricName,
    quarantine_offload_pending_key,
)
from terragon_ingest.daemon_events import repository
from terragon_ingest.daemon_events.quarantine import cache_clock
from terragon_ingest.daemon_events.schemas import SweepResult
from terragon_ingest.db import connection, unbounded
from terragon_ingest.db.locks import MAINTENANCE_SWEEP_LOCK
from terragon_ingest.runs import finalize_stale_runs
from terragon_ingest.telemetry import build_event, emit_event, trace_id_from

if TYPE_CHECKING:
    from terragon_ingest.daemon_events.deps import DaemonEventsDeps

log = structlog.get_logger()

ORPHAN_AGE_SECONDS = 300
"""An offloaded object without a row this long after its write belongs to a row that never committed."""
ORPHAN_BATCH = 1000


async def sweep(
    deps: DaemonEventsDeps, *, orphan_age_seconds: float = ORPHAN_AGE_SECONDS
) -> SweepResult:
    correlation = deps.settings.correlation
    trace_id = trace_id_from(None)
    async with unbounded(deps.pool) as conn, conn.transaction():
        if not await repository.try_sweep_lock(conn, MAINTENANCE_SWEEP_LOCK):
            log.debug("maintenance_sweep_skipped", reason="another replica holds the sweep lock")
            return SweepResult(swept=False)
        finalized = await finalize_stale_runs(
            conn,
            stale_seconds=correlation.STALE_RUN_SECONDS,
            grace_seconds=correlation.MISSING_END_SHA_GRACE_SECONDS,
        )
        for run in finalized:
            event = build_event(
                RUN_FINALIZED_EVENT,
                origin=EventOrigin.DAEMON_EVENT,
                trace_id=trace_id,
                thread_id=run.thread_id,
                thread_chat_id=run.thread_chat_id,
                run_id=run.run_id,
                codesandbox_id=run.codesandbox_id,
                sandbox_provider=run.sandbox_provider,
                user_id=run.user_id,
                properties={
                    "finishReason": FinishReason.MISSING_END_SHA_TIMEOUT.value,
                    "repoFullName": run.repo_full_name,
                },
            )
            await emit_event(conn, event)
    for run in finalized:
        deps.metrics.inc(
            MetricName.RUN_FINALIZED,
            repo=run.repo_full_name,
            user=run.user_id,
            provider=run.sandbox_provider,
            reason=FinishReason.MISSING_END_SHA_TIMEOUT.value,
        )
    removed = await remove_orphan_objects(deps, older_than_seconds=orphan_age_seconds)
    result = SweepResult(
        swept=True,
        finalized_runs=len(finalized),
        finalized_run_ids=[r.run_id for r in finalized],
        orphan_objects_removed=removed,
    )
    if finalized or removed:
        log.info("maintenance_swept", finalized_runs=len(finalized), orphan_objects_removed=removed)
    return result


async def remove_orphan_objects(deps: DaemonEventsDeps, *, older_than_seconds: float) -> int:
    """Delete offloaded objects registered as pending before the cutoff that have no row."""
    if deps.settings.valkey.URL is None:  # a command run without one (it says so)
        log.info("orphan_scan_skipped", reason="Valkey is not configured (no VALKEY_URL)")
        return 0
    pending_key = quarantine_offload_pending_key(deps.settings.server.ENV)
    try:
        cutoff = await cache_clock(deps) - older_than_seconds
        pending = await deps.valkey.zrangebyscore(
            pending_key, "-inf", cutoff, start=0, num=ORPHAN_BATCH
        )
    except (ValkeyError, OSError) as exc:
        log.warning(
            "orphan_scan_skipped",
            reason="Valkey is configured but did not answer",
            error=str(exc),
            hint="retried next sweep",
        )
        return 0
    if not pending:
        return 0
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in pending]
    async with connection(deps.pool) as conn:
        kept = await repository.existing_object_keys(conn, keys)
    removed = 0
    for key in keys:
        if key not in kept and await deps.objects.delete(key):
            removed += 1
            log.info("orphan_object_removed", key=key, reason="its quarantine row never committed")
    await deps.valkey.zrem(pending_key, *pending)
    return removed
