"""Emit preview events: schema-checked against CONTRACT §6, one JSON log line + one table row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from terragon_core import (
    EventOrigin,
    PreviewEvent,
    SandboxProvider,
    decode_preview_event,
    encode_preview_event,
)
from terragon_ingest.telemetry import repository

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

log = structlog.get_logger()


def build_event(
    event_name: str,
    *,
    origin: EventOrigin,
    trace_id: str,
    thread_id: str | None,
    thread_chat_id: str | None,
    run_id: str | None,
    codesandbox_id: str | None,
    sandbox_provider: str | None,
    preview_session_id: str | None = None,
    user_id: str | None = None,
    proxy_req_id: str | None = None,
    properties: dict[str, Any] | None = None,
) -> PreviewEvent:
    """A validated event: built, encoded and strictly decoded, so it cannot leave malformed."""
    event = PreviewEvent(
        event_name=event_name,
        origin=origin,
        ts_server=datetime.now(UTC),
        trace_id=trace_id,
        thread_id=thread_id,
        thread_chat_id=thread_chat_id,
        run_id=run_id,
        codesandbox_id=codesandbox_id,
        sandbox_provider=SandboxProvider(sandbox_provider) if sandbox_provider else None,
        preview_session_id=preview_session_id,
        user_id=user_id,
        proxy_req_id=proxy_req_id,
        properties=properties or {},
    )
    return decode_preview_event(encode_preview_event(event))


async def emit_event(conn: AsyncConn, event: PreviewEvent) -> None:
    """Record `event`: a JSON log line (for log shipping) and a `preview_event` row (for the archive)."""
    log_event(event)
    await repository.insert_preview_event(conn, event)


def log_event(event: PreviewEvent) -> None:
    """The JSON log line of an event whose row a caller writes itself (in a combined statement)."""
    log.info("preview_event", **msgspec.to_builtins(event))
