"""SQL of the preview domain: preview sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row

from terragon_ingest.db import load_queries
from terragon_ingest.preview.schemas import PreviewSession

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.preview")


async def _session(conn: AsyncConn, name: str, params: dict[str, Any]) -> PreviewSession | None:
    cur = conn.cursor(row_factory=class_row(PreviewSession))
    await cur.execute(Q[name], params)
    return await cur.fetchone()


async def insert_session(conn: AsyncConn, params: dict[str, Any]) -> PreviewSession:
    session = await _session(conn, "insert_session", params)
    assert session is not None
    return session


async def fetch_session(conn: AsyncConn, preview_session_id: str) -> PreviewSession | None:
    return await _session(conn, "fetch_session", {"preview_session_id": preview_session_id})


async def bump_revocation(
    conn: AsyncConn, preview_session_id: str, *, revoke: bool
) -> PreviewSession | None:
    params = {"preview_session_id": preview_session_id, "revoke": revoke}
    return await _session(conn, "bump_revocation", params)
