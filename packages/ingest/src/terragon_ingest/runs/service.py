"""Run-context writers: the only code that writes run identity (DESIGN "one writer per fact").

`create_run_context` mints a run and moves the pointer; `bind_run_sandbox` records the sandbox
and the start SHA; `finalize_stale_runs` is the backstop's; `record_missing_end_sha` starts its
grace window; `close_thread` ends a closed thread's live run and revokes its daemon tokens. A run's progress (`last_accepted_seq`, counts, the terminal status and diff source)
is written only by the correlation decision under the run lock
(db/functions/terragon_ingest_envelopes.sql). Sandbox readers only read runs.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from terragon_core import FinishReason, FrozenFlags, SandboxProvider, TriggerSource
from terragon_ingest.db import connection
from terragon_ingest.db.pool import RETRYABLE_CONFLICTS
from terragon_ingest.errors import NotFound, RunContextConflict
from terragon_ingest.runs import repository
from terragon_ingest.runs.flags import resolve_frozen_flags

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn, Pool
    from terragon_ingest.runs.repository import ClosedThread, FinalizedRun
    from terragon_ingest.runs.schemas import Thread

log = structlog.get_logger()

MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.025
BACKOFF_JITTER = 0.2


class _PointerMoved(Exception):
    """The pointer's version changed between lock and CAS."""


@dataclass(frozen=True, slots=True)
class RunContext:
    run_id: str
    created: bool
    """False when `start_request_id` had already started this run (idempotent replay)."""
    superseded_run_ids: tuple[str, ...]
    frozen_flags: FrozenFlags
    version: int


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """25 ms · 2^attempt, ±20 % jitter."""
    jitter = (rng or random).uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
    return BACKOFF_BASE_SECONDS * (2**attempt) * (1 + jitter)


async def create_run_context(
    pool: Pool,
    *,
    thread_id: str,
    thread_chat_id: str,
    start_request_id: str,
    trigger_source: TriggerSource,
) -> RunContext:
    """Mint (or find) the run for `start_request_id` and make it the active run.

    Locks the pointer row, returns the existing run for a repeated `start_request_id`, otherwise
    supersedes the previous active run, inserts the new run with its frozen flags and moves the
    pointer by compare-and-swap on `version`. Conflicts retry at most 5 times with backoff, then
    raise `RunContextConflict` with nothing written (each attempt is one transaction).
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            return await _attempt(pool, thread_id, thread_chat_id, start_request_id, trigger_source)
        except (_PointerMoved, *RETRYABLE_CONFLICTS) as exc:
            delay = backoff_seconds(attempt)
            log.warning(
                "run_context_conflict_retry",
                thread_id=thread_id,
                thread_chat_id=thread_chat_id,
                attempt=attempt + 1,
                delay_ms=round(delay * 1000, 1),
                error=type(exc).__name__,
            )
            if attempt + 1 < MAX_ATTEMPTS:
                await asyncio.sleep(delay)
    raise RunContextConflict(
        f"run context for thread {thread_id!r} chat {thread_chat_id!r} kept changing; "
        f"gave up after {MAX_ATTEMPTS} attempts, nothing written. Retry the start request."
    )


async def _attempt(
    pool: Pool,
    thread_id: str,
    thread_chat_id: str,
    start_request_id: str,
    trigger_source: TriggerSource,
) -> RunContext:
    async with connection(pool) as conn, conn.transaction():
        thread = await repository.fetch_thread(conn, thread_id)
        if thread is None:
            raise NotFound(
                f"thread {thread_id!r} is not registered; POST /api/internal/threads first"
            )
        _active, version = await repository.lock_run_context(conn, thread_id, thread_chat_id)
        existing = await repository.fetch_run_id_by_start_request(
            conn, thread_id, thread_chat_id, start_request_id
        )
        if existing is not None:
            run = await repository.fetch_run(conn, existing)
            assert run is not None
            return RunContext(existing, False, (), run.frozen_flags, version)
        superseded = await repository.supersede_active_runs(conn, thread_id, thread_chat_id)
        flags = await resolve_frozen_flags(conn, thread.repo_full_name, thread.user_id)
        run_id = str(uuid.uuid4())
        await repository.insert_run(
            conn,
            {
                "run_id": run_id,
                "thread_id": thread_id,
                "thread_chat_id": thread_chat_id,
                "start_request_id": start_request_id,
                "trigger_source": trigger_source.value,
                "sandbox_preview": flags.sandbox_preview,
                "daemon_run_id_strict": flags.daemon_run_id_strict,
                "rollout_phase": flags.rollout_phase,
            },
        )
        if not await repository.move_run_context_pointer(
            conn, thread_id, thread_chat_id, run_id, version
        ):
            raise _PointerMoved
    log.info(
        "run_created",
        run_id=run_id,
        thread_id=thread_id,
        thread_chat_id=thread_chat_id,
        superseded=superseded,
        strict=flags.daemon_run_id_strict,
    )
    return RunContext(run_id, True, tuple(superseded), flags, version + 1)


async def bind_run_sandbox(
    pool: Pool,
    *,
    run_id: str,
    codesandbox_id: str,
    sandbox_provider: SandboxProvider,
    run_start_sha: str | None,
) -> bool:
    """Record the run's sandbox and start SHA (first value wins); False if the run is not active."""
    async with connection(pool) as conn:
        return await repository.bind_run_sandbox(
            conn,
            {
                "run_id": run_id,
                "codesandbox_id": codesandbox_id,
                "sandbox_provider": sandbox_provider.value,
                "run_start_sha": run_start_sha,
            },
        )


async def record_missing_end_sha(pool: Pool, *, run_id: str) -> bool:
    """Start the backstop's grace window for a run whose terminal envelope lacked `endSha`
    (first time wins). False when the run is no longer active."""
    async with connection(pool) as conn:
        return await repository.record_missing_end_sha(conn, run_id)


async def finalize_stale_runs(
    conn: AsyncConn, *, stale_seconds: int, grace_seconds: int, limit: int = 500
) -> list[FinalizedRun]:
    """The maintenance backstop's writer: finalize due runs as failed / `missing_end_sha_timeout`
    / working-tree-fallback and release their pointer. Runs in the caller's transaction (which
    holds the sweep lock); returns the finalized runs with their repo/user/provider."""
    rows = await repository.finalize_stale_runs(
        conn, stale_seconds=stale_seconds, grace_seconds=grace_seconds, limit=limit
    )
    for row in rows:
        log.warning(
            "run_finalized_by_backstop",
            run_id=row.run_id,
            thread_id=row.thread_id,
            finish_reason=FinishReason.MISSING_END_SHA_TIMEOUT.value,
            hint="the daemon never sent a terminal envelope with endSha; check the daemon's logs",
        )
    return rows


async def close_thread(pool: Pool, *, thread_id: str) -> tuple[Thread, ClosedThread]:
    """Close a thread (CONTRACT §4): end its live run(s) as failed / `thread_closed`, release its
    run-context pointers as the backstop does, and revoke every daemon token of the thread, in
    one transaction. Idempotent: closing again ends and revokes nothing. Raises `NotFound` for an
    unregistered thread. Conflicts (a run start or the sweep on the same rows) retry like
    `create_run_context`."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            thread, closed = await _close_once(pool, thread_id)
        except RETRYABLE_CONFLICTS:
            if attempt + 1 < MAX_ATTEMPTS:
                await asyncio.sleep(backoff_seconds(attempt))
            continue
        log.warning(
            "thread_closed",
            thread_id=thread_id,
            ended_run_id=closed.ended_run_id,
            ended_runs=closed.ended_runs,
            released_pointers=closed.released_pointers,
            revoked_tokens=closed.revoked_tokens,
            hint="its daemons' tokens now answer 401 revoked; a new run start mints a new token",
        )
        return thread, closed
    raise RunContextConflict(
        f"closing thread {thread_id!r} kept conflicting; gave up after {MAX_ATTEMPTS} attempts, "
        "nothing written. Close it again."
    )


async def _close_once(pool: Pool, thread_id: str) -> tuple[Thread, ClosedThread]:
    async with connection(pool) as conn, conn.transaction():
        thread = await repository.fetch_thread(conn, thread_id)
        if thread is None:
            raise NotFound(f"thread {thread_id!r} is not registered")
        closed = await repository.close_thread(conn, thread_id, FinishReason.THREAD_CLOSED.value)
    return thread, closed
