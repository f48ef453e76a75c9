"""Denials of preview access: one event, one counter, one log line, one response shape.

`deny()` records a denial (`v1.preview.access.denied`, CONTRACT §6; `preview.access_denied`
counter with the reason) and returns the `PreviewDenied` to raise; the controllers' exception
handler `denial_response` answers `{code: <SecurityReason>, error}` with core's status. When the
cache is unavailable the body also carries `retryAfterMs` and `backoffHint`, plus `Retry-After`.

A denial of a request without a valid credential (CONTRACT §3: no cookie or token that verifies
for the session, a spent exchange token, a cross-site request or worker script refused before
the credential is read) is a stranger's as far as the service can tell: it is counted under
`user="anonymous"` (never the session's user: a stranger must not raise a tenant's numbers, and
the alert rules leave `anonymous` out), and its event and log line are written at most once per
session, reason and minute (`DenialSampler`), so a flood costs a counter increment per request,
not a row. Denials after the credential verified (the user's access is gone, Valkey is down) are
the user's own: counted under their id and recorded every time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog

from terragon_core import (
    ANONYMOUS_USER,
    PROXY_REQUEST_ID_HEADER,
    EventOrigin,
    MetricName,
    PreviewEventName,
    SecurityReason,
    http_status_for,
)
from terragon_ingest.db import connection
from terragon_ingest.errors import DatabaseUnavailable
from terragon_ingest.kit.http import json_response
from terragon_ingest.preview.schemas import Denial
from terragon_ingest.telemetry import build_event, emit_event

if TYPE_CHECKING:
    from litestar import Request, Response

    from terragon_ingest.preview.deps import PreviewDeps
    from terragon_ingest.preview.schemas import PreviewSession

log = structlog.get_logger()

BACKOFF_HINT = "exponential"
"""Clients wait `retryAfterMs`, then double the wait (with jitter) on every further 503."""


@dataclass(slots=True)
class AccessContext:
    """What a denial event says about the request: path, trace, and the session once known.

    `authenticated`: the request carries a valid credential (a verified cookie or exchange token
    of this session, or the internal token at session start); until then a denial is anonymous.
    """

    origin: EventOrigin
    trace_id: str
    authenticated: bool = False
    preview_session_id: str | None = None
    session: PreviewSession | None = None
    user_id: str | None = None
    repo_full_name: str | None = None
    thread_id: str | None = None
    thread_chat_id: str | None = None
    run_id: str | None = None
    codesandbox_id: str | None = None
    sandbox_provider: str | None = None
    proxy_req_id: str | None = None

    def bind(self, session: PreviewSession) -> None:
        self.session = session
        self.user_id = session.user_id
        self.repo_full_name = session.repo_full_name
        self.thread_id, self.thread_chat_id = session.thread_id, session.thread_chat_id
        self.run_id = session.run_id
        self.codesandbox_id, self.sandbox_provider = (
            session.codesandbox_id,
            session.sandbox_provider,
        )


class PreviewDenied(Exception):
    """Preview access denied; `reason` is the `SecurityReason` on the wire."""

    def __init__(
        self,
        reason: SecurityReason,
        message: str,
        *,
        retry_after_ms: int | None = None,
        proxy_req_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_ms = retry_after_ms
        self.proxy_req_id = proxy_req_id


class DenialSampler:
    """Is this the first anonymous denial of (session, reason) in the current minute, in this
    process? One set of keys for the current wall-clock minute, cleared when the minute turns:
    a set lookup per denial, no I/O. Keys are bounded by the live sessions (a Host naming no live
    session is a 404 before any denial) times the reasons; `MAX_KEYS` is the backstop.

    Across replicas and `serve --workers N` processes each samples on its own: P processes write
    at most P rows per session, reason and minute (a shared Valkey key would put a round trip on
    every stranger's request to save a few rows)."""

    MAX_KEYS: Final = 65_536

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minute = -1
        self._seen: set[tuple[str | None, SecurityReason]] = set()

    def first(self, preview_session_id: str | None, reason: SecurityReason) -> bool:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._seen.clear()
        key = (preview_session_id, reason)
        if key in self._seen or len(self._seen) >= self.MAX_KEYS:
            return False
        self._seen.add(key)
        return True


async def deny(
    deps: PreviewDeps, ctx: AccessContext, reason: SecurityReason, message: str
) -> PreviewDenied:
    """Record the denial (counter; event + log line, sampled when anonymous) and return the
    exception to raise."""
    user = ctx.user_id if ctx.authenticated else ANONYMOUS_USER
    deps.metrics.inc(
        MetricName.ACCESS_DENIED,
        repo=ctx.repo_full_name,
        user=user,
        provider=ctx.sandbox_provider,
        reason=reason.value,
    )
    retry_after_ms = (
        deps.settings.preview.RETRY_AFTER_MS if reason is SecurityReason.CACHE_UNAVAILABLE else None
    )
    denied = PreviewDenied(
        reason, message, retry_after_ms=retry_after_ms, proxy_req_id=ctx.proxy_req_id
    )
    if not ctx.authenticated and not deps.denials.first(ctx.preview_session_id, reason):
        return denied  # this session's (reason, minute) already has its event and log line
    log.warning(
        "preview_access_denied",
        reason=reason.value,
        error=message,
        origin=ctx.origin.value,
        preview_session_id=ctx.preview_session_id,
        user_id=user,
        repo=ctx.repo_full_name,
        action=_ACTIONS.get(reason, "none: the request was not allowed"),
    )
    event = build_event(
        PreviewEventName.ACCESS_DENIED,
        origin=ctx.origin,
        trace_id=ctx.trace_id,
        thread_id=ctx.thread_id,
        thread_chat_id=ctx.thread_chat_id,
        run_id=ctx.run_id,
        codesandbox_id=ctx.codesandbox_id,
        sandbox_provider=ctx.sandbox_provider,
        preview_session_id=ctx.preview_session_id,
        user_id=user,
        proxy_req_id=ctx.proxy_req_id,
        properties={"reason": reason.value, "error": message, "repoFullName": ctx.repo_full_name},
    )
    try:
        async with connection(deps.pool) as conn:
            await emit_event(conn, event)
    except DatabaseUnavailable as exc:
        # The denial still stands; the event row is the part that is lost (the log line is not).
        log.error("preview_denial_event_lost", reason=reason.value, error=str(exc))
    return denied


_ACTIONS: dict[SecurityReason, str] = {
    SecurityReason.CACHE_UNAVAILABLE: "check Valkey (VALKEY_URL); preview access fails closed",
    SecurityReason.EXPIRED: "the client must start a new preview session",
    SecurityReason.REVOKED: "the session was revoked or reminted; start or remint a session",
}


def denial_response(_: Request[Any, Any, Any], exc: PreviewDenied) -> Response[bytes]:
    """`{code, error}` (+ `retryAfterMs`, `backoffHint`, `Retry-After` when the cache is down)."""
    headers: dict[str, str] = {}
    body = Denial(code=exc.reason.value, error=str(exc))
    if exc.retry_after_ms is not None:
        body.retry_after_ms = exc.retry_after_ms
        body.backoff_hint = BACKOFF_HINT
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_ms / 1000)))
    if exc.proxy_req_id:
        headers[PROXY_REQUEST_ID_HEADER] = exc.proxy_req_id
    return json_response(msgspec.to_builtins(body), http_status_for(exc.reason), headers or None)
