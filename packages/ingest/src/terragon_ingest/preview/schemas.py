"""Wire shapes of the preview endpoints (CONTRACT §5). camelCase on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec


class SessionStartCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`POST /api/internal/preview/session/start`: the binding must equal the active run."""

    thread_id: str
    thread_chat_id: str
    run_id: str
    user_id: str
    upstream_origin: str


class SessionStarted(msgspec.Struct, rename="camel"):
    preview_session_id: str
    exchange_token: str
    expires_at: datetime
    preview_url: str
    """The session's own origin; the browser starts at `{previewUrl}/__terragon/exchange?token=…`."""


class ExchangeCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: str


class Exchanged(msgspec.Struct, rename="camel"):
    expires_at: datetime


class MovedToSessionOrigin(msgspec.Struct, rename="camel"):
    """410 from the old path-based routes: the session is served from `previewUrl` now."""

    code: str
    error: str
    preview_url: str | None


class SubscriptionToken(msgspec.Struct, rename="camel"):
    token: str
    expires_at: datetime


class SessionRevoked(msgspec.Struct, rename="camel"):
    preview_session_id: str
    revocation_version: int


class Denial(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every denial: `{code: <SecurityReason>, error}` (+ backoff fields when the cache is down)."""

    code: str
    error: str
    retry_after_ms: int | None = None
    backoff_hint: str | None = None


@dataclass(frozen=True, slots=True)
class PreviewSession:
    """A `preview_session` row."""

    preview_session_id: str
    thread_id: str
    thread_chat_id: str
    run_id: str
    user_id: str
    repo_full_name: str
    upstream_origin: str
    codesandbox_id: str | None
    sandbox_provider: str | None
    revocation_version: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
