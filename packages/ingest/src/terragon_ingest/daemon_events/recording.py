"""Recording a quarantine decision: the row, its event, the counters, and (for a strict mismatch
on a thread with a live preview) `v1.preview.access.denied`. One statement per row, all or
nothing: the row, its event and the denials (repository `insert_quarantine`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import msgspec
import structlog

from terragon_core import (
    QUARANTINE_RECORDED_EVENT,
    EventOrigin,
    MetricName,
    PreviewEventName,
    QuarantineReason,
    SecurityReason,
    is_strict_mismatch,
)
from terragon_ingest.daemon_events import repository
from terragon_ingest.db import connection
from terragon_ingest.telemetry import build_event, emit_event, log_event

if TYPE_CHECKING:
    from terragon_core import PreviewEvent, QuarantineRecord
    from terragon_ingest.daemon_events.deps import DaemonEventsDeps
    from terragon_ingest.daemon_events.quarantine import Dimensions
    from terragon_ingest.db import AsyncConn
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

_STALE_LOGGED: OrderedDict[tuple[str, int], None] = OrderedDict()
_STALE_LOGGED_MAX = 10_000

_HINTS: dict[QuarantineReason, str] = {
    QuarantineReason.MISSING_RUN_ID: "the daemon predates runId; upgrade it or turn strict off for the repo",
    QuarantineReason.MISMATCH: "a zombie daemon of an older run; it stops after this 202",
    QuarantineReason.LEGACY_MODE: "applied under strict=false; roll daemonRunIdStrict out when daemons send runId",
    QuarantineReason.PAYLOAD_VERSION_MISMATCH: "the run switched payload versions mid-run; check the daemon build",
    QuarantineReason.MISSING_END_SHA: "terminal without endSha; the backstop finalizes the run after the grace window",
    QuarantineReason.INVALID_ENVELOPE: "v2 envelope without eventId or positive seq; check the daemon build",
}


async def record_quarantine(
    deps: DaemonEventsDeps, row: QuarantineRecord, *, dims: Dimensions
) -> str:
    """Insert the row and its event, and for a strict mismatch the `v1.preview.access.denied` of
    every live preview session of the (thread, chat) (the `preview_session` table read by this
    domain's own statement: daemon_events and preview are independent, import-linter); one
    statement, one round trip. Count it. Returns the row id.

    `preview.strict_mismatch` is counted from the row's own `strict` (the frozen value the
    decision used) by core's `is_strict_mismatch`, as the archive and the dashboard count it
    (core's `METRIC_SQL`)."""
    reason = row.reason
    strict_mismatch = is_strict_mismatch(reason, row.strict)
    quarantine_id = repository.new_quarantine_id()
    event = quarantine_event(row, quarantine_id, dims)
    denial = access_denied_event(row, dims) if strict_mismatch else None
    item = repository.quarantine_item(row, quarantine_id, event, denial)
    group = deps.quarantine_commit
    denied = await group.submit(item) if group is not None else None
    if denied is None:  # grouping off, or its batch failed: alone, its error raised here
        async with connection(deps.pool) as conn:
            denied = await repository.insert_quarantine(conn, item, once=group is not None)
    if denial is not None:
        for session_id in denied:
            log_event(msgspec.structs.replace(denial, preview_session_id=session_id))
    log_event(event)
    count_quarantine(deps.metrics, reason, dims, strict_mismatch=strict_mismatch)
    log.info(
        "envelope_quarantined",
        quarantine_id=quarantine_id,
        reason=reason.value,
        thread_id=row.thread_id,
        run_id=row.run_id,
        active_run_id=row.active_run_id,
        event_id=row.event_id,
        seq=row.seq,
        hint=_HINTS[reason],
    )
    return quarantine_id


def count_quarantine(
    metrics: Metrics, reason: QuarantineReason, dims: Dimensions, *, strict_mismatch: bool
) -> None:
    labels = {
        "repo": dims.repo_full_name,
        "user": dims.user_id,
        "provider": dims.sandbox_provider,
        "reason": reason.value,
    }
    metrics.inc(MetricName.QUARANTINE, **labels)
    if strict_mismatch:
        metrics.inc(MetricName.STRICT_MISMATCH, **labels)
    if reason is QuarantineReason.MISSING_END_SHA:
        metrics.inc(MetricName.MISSING_END_SHA, **labels)
    if reason is QuarantineReason.LEGACY_MODE:
        metrics.inc(MetricName.LEGACY_MODE, **labels)


def quarantine_event(row: QuarantineRecord, quarantine_id: str, dims: Dimensions) -> PreviewEvent:
    """The `quarantine.recorded` event of a quarantine row."""
    assert row.trace_id is not None, "a row this service records carries its trace id"
    return build_event(
        QUARANTINE_RECORDED_EVENT,
        origin=EventOrigin.DAEMON_EVENT,
        trace_id=row.trace_id,
        thread_id=row.thread_id,
        thread_chat_id=row.thread_chat_id,
        run_id=row.run_id or row.active_run_id,
        codesandbox_id=dims.codesandbox_id,
        sandbox_provider=dims.sandbox_provider,
        user_id=dims.user_id,
        properties={
            "reason": row.reason.value,
            "quarantineId": quarantine_id,
            "envelopeRunId": row.run_id,
            "activeRunId": row.active_run_id,
            "eventId": row.event_id,
            "seq": row.seq,
            "payloadSize": row.payload_size,
            "offloaded": row.payload_object_key is not None,
            "repoFullName": dims.repo_full_name,
        },
    )


async def emit_quarantine_event(
    conn: AsyncConn, row: QuarantineRecord, quarantine_id: str, dims: Dimensions
) -> None:
    """The event of a row written elsewhere (the legacy_mode row commits with its apply)."""
    await emit_event(conn, quarantine_event(row, quarantine_id, dims))


def access_denied_event(row: QuarantineRecord, dims: Dimensions) -> PreviewEvent:
    """The `v1.preview.access.denied` a strict mismatch emits for each live preview session of its
    thread (the statement fills in each session's id)."""
    assert row.trace_id is not None, "a row this service records carries its trace id"
    return build_event(
        PreviewEventName.ACCESS_DENIED.value,
        origin=EventOrigin.DAEMON_EVENT,
        trace_id=row.trace_id,
        thread_id=row.thread_id,
        thread_chat_id=row.thread_chat_id,
        run_id=row.active_run_id,
        codesandbox_id=dims.codesandbox_id,
        sandbox_provider=dims.sandbox_provider,
        user_id=dims.user_id,
        properties={
            "reason": SecurityReason.BINDING_MISMATCH.value,
            "envelopeRunId": row.run_id,
            "activeRunId": row.active_run_id,
            "quarantineReason": row.reason.value,
        },
    )


async def after_legacy_apply(
    deps: DaemonEventsDeps, row: QuarantineRecord, row_id: str, dims: Dimensions
) -> None:
    """The legacy_mode row committed with the apply; count it and emit its event."""
    count_quarantine(deps.metrics, QuarantineReason.LEGACY_MODE, dims, strict_mismatch=False)
    try:
        async with connection(deps.pool) as conn:
            await emit_quarantine_event(conn, row, row_id, dims)
    except Exception as exc:  # the apply and its row committed; only the event line is lost
        log.error("legacy_mode_event_lost", quarantine_id=row_id, error=str(exc))


def log_stale_once(run_id: str, seq: int | None, last_seq: int | None) -> None:
    """`stale_seq` is logged once per (runId, seq) per process: retries storms stay quiet."""
    key = (run_id, seq or 0)
    if key in _STALE_LOGGED:
        return
    _STALE_LOGGED[key] = None
    if len(_STALE_LOGGED) > _STALE_LOGGED_MAX:
        _STALE_LOGGED.popitem(last=False)
    log.info(
        "envelope_stale_seq",
        run_id=run_id,
        seq=seq,
        last_accepted_seq=last_seq,
        hint="a late retry or a reordered batch; acked 202, nothing applied",
    )
