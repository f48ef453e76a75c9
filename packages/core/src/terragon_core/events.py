"""The one observability event schema (CONTRACT §6). Unknown fields are rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from terragon_core.constants import SCHEMA_VERSION
from terragon_core.enums import EventOrigin, PreviewEventName, SandboxProvider

_EVENT_NAMES: Final = frozenset(name.value for name in PreviewEventName)


class PreviewEvent(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """`{schemaVersion, eventName, origin, tsServer, traceId, threadId, threadChatId, runId,
    codesandboxId, sandboxProvider, previewSessionId?, userId?, proxyReqId?, properties}`."""

    schema_version: int = SCHEMA_VERSION
    event_name: str
    """A `PreviewEventName`, or a `preview.*` operational event such as the purge event."""
    origin: EventOrigin
    ts_server: datetime
    trace_id: str
    thread_id: str | None
    thread_chat_id: str | None
    run_id: str | None
    codesandbox_id: str | None
    sandbox_provider: SandboxProvider | None
    preview_session_id: str | None = None
    user_id: str | None = None
    proxy_req_id: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise msgspec.ValidationError(f"schemaVersion must be {SCHEMA_VERSION}")
        if not self.trace_id:
            raise msgspec.ValidationError("traceId is required")
        if self.event_name not in _EVENT_NAMES and not self.event_name.startswith("preview."):
            raise msgspec.ValidationError(f"unknown eventName {self.event_name!r}")
        if self.ts_server.tzinfo is None:
            raise msgspec.ValidationError("tsServer must be timezone-aware (UTC)")


_event_decoder: Final = msgspec.json.Decoder(PreviewEvent, strict=True)


def decode_preview_event(raw: bytes) -> PreviewEvent:
    """Validate a serialized event against the locked schema."""
    return _event_decoder.decode(raw)


def encode_preview_event(event: PreviewEvent) -> bytes:
    return msgspec.json.encode(event)
