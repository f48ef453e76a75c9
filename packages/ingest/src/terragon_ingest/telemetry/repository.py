"""SQL for the preview event table, and the alert hooks' (`alerts.py`: read in the rollup's worker
thread, on its sync connection)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from terragon_ingest.db import load_queries

if TYPE_CHECKING:
    from terragon_core import PreviewEvent
    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.telemetry")


def event_params(event: PreviewEvent) -> dict[str, Any]:
    """The `preview_event` columns of `event` as query parameters."""
    values = _columns(event)
    values["properties"] = Jsonb(event.properties)
    return values


def event_row(event: PreviewEvent) -> dict[str, Any]:
    """The `preview_event` columns of `event` as a JSON object's values, for a SQL function that
    inserts the row itself (`jsonb_populate_record`)."""
    values = _columns(event)
    values["ts_server"] = event.ts_server.isoformat()
    return values


def _columns(event: PreviewEvent) -> dict[str, Any]:
    return {
        "ts_server": event.ts_server,
        "schema_version": event.schema_version,
        "event_name": event.event_name,
        "origin": event.origin.value,
        "trace_id": event.trace_id,
        "thread_id": event.thread_id,
        "thread_chat_id": event.thread_chat_id,
        "run_id": event.run_id,
        "codesandbox_id": event.codesandbox_id,
        "sandbox_provider": event.sandbox_provider.value if event.sandbox_provider else None,
        "preview_session_id": event.preview_session_id,
        "user_id": event.user_id,
        "proxy_req_id": event.proxy_req_id,
        "properties": event.properties,
    }


async def insert_preview_event(conn: AsyncConn, event: PreviewEvent) -> None:
    await conn.execute(Q["insert_preview_event"], event_params(event))


# ---------------------------------------------------------------- alert hooks (sync)

Conn = psycopg.Connection[Any]


def fetch_quarantine_breaches(conn: Conn, **params: Any) -> list[tuple[str, float, float]]:
    rows = conn.execute(Q["fetch_quarantine_breaches"], params).fetchall()
    return [(str(r[0]), float(r[1]), float(r[2])) for r in rows]


def fetch_access_denied_breach(conn: Conn, **params: Any) -> tuple[float, float] | None:
    row = conn.execute(Q["fetch_access_denied_breach"], params).fetchone()
    return (float(row[0]), float(row[1])) if row else None


def fetch_alert_states(conn: Conn) -> set[tuple[str, str]]:
    return {(str(r[0]), str(r[1])) for r in conn.execute(Q["fetch_alert_states"]).fetchall()}


def insert_alert_state(
    conn: Conn, rule: str, dims_key: str, dimensions: dict[str, str], firing_since: datetime
) -> None:
    conn.execute(
        Q["insert_alert_state"],
        {
            "rule": rule,
            "dims_key": dims_key,
            "dimensions": Jsonb(dimensions),
            "firing_since": firing_since,
        },
    )


def delete_alert_state(conn: Conn, rule: str, dims_key: str) -> None:
    conn.execute(Q["delete_alert_state"], {"rule": rule, "dims_key": dims_key})
