"""SQL for the preview event table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
