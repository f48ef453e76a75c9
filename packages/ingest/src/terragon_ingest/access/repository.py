"""SQL of the access domain: the permission check, the GitHub permission tables, deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg.errors
from psycopg.types.json import Jsonb

from terragon_ingest.db import load_queries
from terragon_ingest.errors import Conflict

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.access")


async def fetch_repo_access(conn: AsyncConn, user_id: str, repo_full_name: str) -> bool:
    cur = await conn.execute(
        Q["fetch_repo_access"], {"user_id": user_id, "repo_full_name": repo_full_name}
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def execute(conn: AsyncConn, name: str, params: dict[str, Any]) -> int:
    """Run one named write of this domain's `queries.sql`; returns the row count."""
    cur = await conn.execute(Q[name], params)
    return cur.rowcount


async def link_github_account(conn: AsyncConn, user_id: str, github_login: str) -> None:
    """One login belongs to one user: linking a login another user holds is a `Conflict`."""
    try:
        await conn.execute(
            Q["upsert_github_account"], {"user_id": user_id, "github_login": github_login}
        )
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(
            f"GitHub login {github_login!r} is already linked to another user; unlink it first"
        ) from exc


async def fetch_users_for_login(conn: AsyncConn, github_login: str) -> list[str]:
    cur = await conn.execute(Q["fetch_users_for_login"], {"github_login": github_login})
    return [str(row[0]) for row in await cur.fetchall()]


async def fetch_team_repos(conn: AsyncConn, team_id: str) -> list[str]:
    cur = await conn.execute(Q["fetch_team_repos"], {"team_id": team_id})
    return [str(row[0]) for row in await cur.fetchall()]


async def insert_delivery(
    conn: AsyncConn, body_sha256: bytes, delivery_id: str, event: str, action: str | None
) -> bool:
    """Record a delivery by its body's digest; False when the body (or the delivery id) was
    recorded before."""
    params = {
        "body_sha256": body_sha256,
        "delivery_id": delivery_id,
        "event": event,
        "action": action,
    }
    cur = await conn.execute(Q["insert_delivery"], params)
    return await cur.fetchone() is not None


async def fetch_delivery(conn: AsyncConn, body_sha256: bytes) -> tuple[list[Any], bool] | None:
    """`(targets, invalidated)` of the delivery recorded for this body."""
    cur = await conn.execute(Q["fetch_delivery"], {"body_sha256": body_sha256})
    row = await cur.fetchone()
    return (list(row[0]), row[1] is not None) if row else None


async def set_delivery_targets(conn: AsyncConn, body_sha256: bytes, targets: list[Any]) -> None:
    await conn.execute(
        Q["set_delivery_targets"], {"body_sha256": body_sha256, "targets": Jsonb(targets)}
    )


async def mark_delivery_invalidated(conn: AsyncConn, body_sha256: bytes) -> None:
    await conn.execute(Q["mark_delivery_invalidated"], {"body_sha256": body_sha256})
