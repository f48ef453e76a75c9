"""`startAgentMessage`: mint (or find) the run, bind its sandbox, read its start SHA, mint a
daemon token, build the start message and hand it to `sendDaemonMessage` (CONTRACT §3).

runId propagation, end to end: this module → `DaemonStartMessage.runId` → the daemon echoes it on
every envelope v2 → `POST /api/daemon-event` binds it to the active run before any mutation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from terragon_core import (
    DaemonStartMessage,
    EventOrigin,
    InvalidationReason,
    MetricName,
    SandboxProvider,
    TriggerSource,
)
from terragon_ingest.access import invalidate_repo_access
from terragon_ingest.db import connection
from terragon_ingest.errors import CacheUnavailable, NotFound
from terragon_ingest.runs import repository, tokens
from terragon_ingest.runs.schemas import RunStarted
from terragon_ingest.runs.service import bind_run_sandbox, create_run_context
from terragon_ingest.sandbox.delivery import DeliveryFailed, ensure_supported, send_daemon_message
from terragon_ingest.sandbox.reader import SandboxReadError, SandboxRef, reader_for

if TYPE_CHECKING:
    from terragon_ingest.access import AccessDeps
    from terragon_ingest.runs.deps import RunsDeps

log = structlog.get_logger()


async def start_agent_message(
    deps: RunsDeps,
    *,
    thread_id: str,
    thread_chat_id: str,
    start_request_id: str,
    trigger_source: TriggerSource,
    ingest_url: str,
) -> RunStarted:
    pool = deps.pool
    async with connection(pool) as conn:
        thread = await repository.fetch_thread(conn, thread_id)
    if thread is None:
        raise NotFound(f"thread {thread_id!r} is not registered; POST /api/internal/threads first")
    provider = SandboxProvider(thread.sandbox_provider)
    ensure_supported(provider)  # before anything is written

    context = await create_run_context(
        pool,
        thread_id=thread_id,
        thread_chat_id=thread_chat_id,
        start_request_id=start_request_id,
        trigger_source=trigger_source,
    )
    sandbox = SandboxRef(provider, thread.codesandbox_id, thread.repo_dir)
    run_start_sha: str | None = None
    try:
        run_start_sha = await reader_for(provider, deps.settings.sandbox).read_head_sha(sandbox)
    except SandboxReadError as exc:
        log.info("run_start_sha_unreadable", run_id=context.run_id, reason=str(exc))
    await bind_run_sandbox(
        pool,
        run_id=context.run_id,
        codesandbox_id=thread.codesandbox_id,
        sandbox_provider=provider,
        run_start_sha=run_start_sha,
    )
    if context.created:
        await _invalidate_on_rebind(
            deps.access, thread.user_id, thread.repo_full_name, thread_id, context.run_id
        )

    async with connection(pool) as conn:
        token = await tokens.mint_daemon_token(
            conn, run_id=context.run_id, thread_id=thread_id, user_id=thread.user_id
        )
        run = await repository.fetch_run(conn, context.run_id)
    assert run is not None
    message = DaemonStartMessage(
        run_id=context.run_id,
        thread_id=thread_id,
        thread_chat_id=thread_chat_id,
        token=token,
        ingest_url=ingest_url,
        feature_flags=context.frozen_flags,
    )
    try:
        delivered = await send_daemon_message(
            provider,
            message,
            codesandbox_id=thread.codesandbox_id,
            repo_dir=thread.repo_dir,
            socket_dir=deps.settings.sandbox.socket_dir(deps.settings.server.DATA_DIR),
            delivery_timeout=deps.settings.sandbox.DELIVERY_TIMEOUT,
            settings=deps.settings.sandbox,
        )
    except DeliveryFailed as exc:
        # The run stays minted (502 with its runId): the same startRequestId finds it, mints a
        # fresh token and delivers again.
        deps.metrics.inc(
            MetricName.RUN_START_DELIVERY_FAILED,
            repo=thread.repo_full_name,
            user=thread.user_id,
            provider=provider.value,
            reason=exc.reason,
        )
        raise
    log.info(
        "run_started",
        run_id=context.run_id,
        thread_id=thread_id,
        created=context.created,
        provider=provider.value,
        delivered=delivered,
        run_start_sha=run.run_start_sha,
    )
    return RunStarted(
        run_id=context.run_id,
        status=run.status,
        frozen_flags=context.frozen_flags,
        run_start_sha=run.run_start_sha,
        daemon_message=message,
        delivered=delivered,
    )


async def _invalidate_on_rebind(
    access: AccessDeps, user_id: str, repo_full_name: str, thread_id: str, run_id: str
) -> None:
    """A new active run was bound: the user's cached preview access to the repo is re-checked."""
    try:
        await invalidate_repo_access(
            access,
            user_id,
            repo_full_name,
            InvalidationReason.ACTIVE_RUN_REBOUND,
            origin=EventOrigin.RUN_START,
            thread_id=thread_id,
            run_id=run_id,
        )
    except CacheUnavailable as exc:
        # Access decisions fail closed while Valkey is down, and a stale entry lives <= 60 s:
        # a run start must not fail for this.
        log.warning(
            "active_run_rebind_invalidation_skipped",
            run_id=run_id,
            error=str(exc),
            hint="cached preview access may lag up to the positive TTL",
        )
