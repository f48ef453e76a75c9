"""Wire shapes of the preview endpoints (CONTRACT §5). camelCase on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec

from terragon_ingest.kit.openapi import Text, WireId

_PORT = r"0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_H = "[0-9A-Fa-f]{1,4}"
_V4 = (
    r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
)
_IPV6 = "|".join(  # the text forms of RFC 4291 §2.2, compressed and with an embedded IPv4
    [
        f"({_H}:){{7}}{_H}",
        f"({_H}:){{1,7}}:",
        *(f"({_H}:){{1,{6 - k}}}(:{_H}){{1,{k + 1}}}" for k in range(6)),
        f":((:{_H}){{1,7}}|:)",
        f"({_H}:){{6}}{_V4}",
        f"({_H}:){{1,5}}:{_V4}",
        f"::({_H}:){{0,5}}{_V4}",
    ]
)
_SPACE = r"[\t\n\v\f\r ]*"  # what `str.strip` removes and every regex dialect means alike
UPSTREAM_ORIGIN_PATTERN = (
    rf"^{_SPACE}https?://([A-Za-z0-9.-]+|\[({_IPV6})\])(:({_PORT})?)?/?{_SPACE}$"
)
"""`scheme://host[:port]`: no user info, path, query or fragment. `normalize_origin` stays the
full check (the SSRF boundary); this is its shape, in /schema so a client knows before it asks."""


class SessionStartCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`POST /api/internal/preview/session/start`: the binding must equal the active run."""

    thread_id: WireId
    thread_chat_id: WireId
    run_id: WireId
    user_id: Text
    upstream_origin: Annotated[str, msgspec.Meta(pattern=UPSTREAM_ORIGIN_PATTERN)]


class SessionStarted(msgspec.Struct, rename="camel"):
    preview_session_id: str
    exchange_token: str
    expires_at: datetime
    preview_url: str
    """The session's own origin; the browser starts at `{previewUrl}/__terragon/exchange?token=…`."""


class ExchangeCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: Text


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
