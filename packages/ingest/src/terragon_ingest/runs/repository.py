"""SQL of the runs domain: threads, run rows, the run-context pointer, flags, daemon tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row, dict_row

from terragon_core import FrozenFlags
from terragon_ingest.db import load_queries
from terragon_ingest.runs.schemas import Run, Thread

if TYPE_CHECKING:
    from datetime import datetime

    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.runs")


@dataclass(frozen=True, slots=True)
class DaemonTokenRow:
    """A daemon token by its digest (db/functions/terragon_daemon_token.sql)."""

    token_hash: bytes
    thread_id: str
    user_id: str
    run_id: str
    expires_at: datetime | None
    """Its run's end plus the grace hour; None while the run has not ended."""
    refusal: str | None
    """`revoked` or `expired` when it no longer authenticates, else None."""


@dataclass(frozen=True, slots=True)
class FinalizedRun:
    """A run the backstop finalized, with its thread's dimensions (for the event and metric)."""

    run_id: str
    thread_id: str
    thread_chat_id: str
    codesandbox_id: str | None
    sandbox_provider: str | None
    repo_full_name: str
    user_id: str
    released: int
    """Pointers released by the same statement (across every run it finalized)."""


async def _one(conn: AsyncConn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q[name], params)
    return await cur.fetchone()


async def upsert_thread(conn: AsyncConn, params: dict[str, Any]) -> Thread:
    row = await _one(conn, "upsert_thread", params)
    assert row is not None
    return Thread(**row)


async def fetch_thread(conn: AsyncConn, thread_id: str) -> Thread | None:
    row = await _one(conn, "fetch_thread", {"thread_id": thread_id})
    return Thread(**row) if row else None


async def lock_run_context(
    conn: AsyncConn, thread_id: str, thread_chat_id: str
) -> tuple[str | None, int]:
    """Create the pointer row if needed, then lock it: `(active_run_id, version)`."""
    key = {"thread_id": thread_id, "thread_chat_id": thread_chat_id}
    await conn.execute(Q["ensure_run_context"], key)
    row = await _one(conn, "lock_run_context", key)
    assert row is not None
    return row["active_run_id"], int(row["version"])


async def fetch_run_context(
    conn: AsyncConn, thread_id: str, thread_chat_id: str
) -> tuple[str | None, int] | None:
    row = await _one(
        conn, "fetch_run_context", {"thread_id": thread_id, "thread_chat_id": thread_chat_id}
    )
    return (row["active_run_id"], int(row["version"])) if row else None


async def fetch_run_id_by_start_request(
    conn: AsyncConn, thread_id: str, thread_chat_id: str, start_request_id: str
) -> str | None:
    row = await _one(
        conn,
        "fetch_run_by_start_request",
        {
            "thread_id": thread_id,
            "thread_chat_id": thread_chat_id,
            "start_request_id": start_request_id,
        },
    )
    return row["run_id"] if row else None


async def supersede_active_runs(conn: AsyncConn, thread_id: str, thread_chat_id: str) -> list[str]:
    cur = await conn.execute(
        Q["supersede_active_runs"], {"thread_id": thread_id, "thread_chat_id": thread_chat_id}
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def insert_run(conn: AsyncConn, params: dict[str, Any]) -> None:
    await conn.execute(Q["insert_run"], params)


async def move_run_context_pointer(
    conn: AsyncConn, thread_id: str, thread_chat_id: str, run_id: str, expected_version: int
) -> bool:
    """Compare-and-swap the pointer; False when the version moved under us."""
    cur = await conn.execute(
        Q["move_run_context_pointer"],
        {
            "thread_id": thread_id,
            "thread_chat_id": thread_chat_id,
            "run_id": run_id,
            "expected_version": expected_version,
        },
    )
    return cur.rowcount == 1


async def bind_run_sandbox(conn: AsyncConn, params: dict[str, Any]) -> bool:
    cur = await conn.execute(Q["bind_run_sandbox"], params)
    return cur.rowcount == 1


async def fetch_run(conn: AsyncConn, run_id: str) -> Run | None:
    row = await _one(conn, "fetch_run", {"run_id": run_id})
    if row is None:
        return None
    flags = FrozenFlags(
        sandbox_preview=row.pop("frozen_sandbox_preview"),
        daemon_run_id_strict=row.pop("frozen_daemon_run_id_strict"),
        rollout_phase=row.pop("frozen_rollout_phase"),
    )
    row.pop("start_request_id")
    return Run(frozen_flags=flags, **row)


async def fetch_flag_rows(
    conn: AsyncConn, repo_full_name: str, user_id: str
) -> list[tuple[str, str, bool]]:
    cur = await conn.execute(
        Q["fetch_flag_rows"], {"repo_full_name": repo_full_name, "user_id": user_id}
    )
    return [(str(r[0]), str(r[1]), bool(r[2])) for r in await cur.fetchall()]


async def upsert_flag(
    conn: AsyncConn, name: str, scope: str, scope_key: str, enabled: bool
) -> None:
    await conn.execute(
        Q["upsert_flag"], {"name": name, "scope": scope, "scope_key": scope_key, "enabled": enabled}
    )


async def insert_daemon_token(conn: AsyncConn, params: dict[str, Any]) -> None:
    await conn.execute(Q["insert_daemon_token"], params)


async def fetch_daemon_token(conn: AsyncConn, token_hash: bytes) -> DaemonTokenRow | None:
    cur = conn.cursor(row_factory=class_row(DaemonTokenRow))
    await cur.execute(Q["fetch_daemon_token"], {"token_hash": token_hash})
    return await cur.fetchone()


@dataclass(frozen=True, slots=True)
class ClosedThread:
    """What `close_thread` did."""

    ended_run_id: str | None
    """The latest started of the runs it ended, if any."""
    ended_runs: int
    released_pointers: int
    revoked_tokens: int


async def close_thread(conn: AsyncConn, thread_id: str, finish_reason: str) -> ClosedThread:
    """In the caller's transaction: lock the thread's pointers, then end its live runs, release
    its pointers and revoke its tokens (one statement)."""
    await conn.execute(Q["lock_thread_run_contexts"], {"thread_id": thread_id})
    cur = conn.cursor(row_factory=class_row(ClosedThread))
    await cur.execute(Q["close_thread"], {"thread_id": thread_id, "finish_reason": finish_reason})
    row = await cur.fetchone()
    assert row is not None
    return row


async def record_missing_end_sha(conn: AsyncConn, run_id: str) -> bool:
    cur = await conn.execute(Q["record_missing_end_sha"], {"run_id": run_id})
    return cur.rowcount == 1


async def finalize_stale_runs(
    conn: AsyncConn, *, stale_seconds: int, grace_seconds: int, limit: int
) -> list[FinalizedRun]:
    cur = conn.cursor(row_factory=class_row(FinalizedRun))
    await cur.execute(
        Q["finalize_stale_runs"],
        {"stale_seconds": stale_seconds, "grace_seconds": grace_seconds, "limit": limit},
    )
    return await cur.fetchall()
