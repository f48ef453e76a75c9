"""Preview session lifecycle: start (bound to the active run), remint, revoke.

Start reads the run-context pointer (`runs.fetch_run_context`) and the run's frozen
flags; it never writes run tables. A run frozen with `sandboxPreview = false` gets no preview
session: that is a `permission_denied` (403), the closest `SecurityReason` to "previews are off
for this run". `upstreamOrigin` must be a bare http(s) origin (400 otherwise) whose addresses
the deployment allows (`addresses.checked_addresses`: 403 `proxy_ssrf_blocked`). The answer
carries `previewUrl`, the session's own origin. Remint and revoke bump `revocationVersion`
(every earlier cookie stops working) and invalidate the user's cached access through
`invalidate_repo_access`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from terragon_core import (
    PREVIEW_SESSION_TTL_SECONDS,
    EventOrigin,
    InvalidationReason,
    PreviewEventName,
    SecurityReason,
)
from terragon_ingest import runs
from terragon_ingest.access import invalidate_repo_access
from terragon_ingest.db import connection
from terragon_ingest.errors import InvalidRequest, NotFound
from terragon_ingest.preview import repository, service
from terragon_ingest.preview.addresses import (
    UpstreamRefused,
    UpstreamUnresolvable,
    checked_addresses,
)
from terragon_ingest.preview.denials import AccessContext, deny
from terragon_ingest.preview.schemas import SessionRevoked, SessionStarted
from terragon_ingest.telemetry import build_event, emit_event

if TYPE_CHECKING:
    from terragon_ingest.db import Pool
    from terragon_ingest.preview.deps import PreviewDeps
    from terragon_ingest.preview.origin import OriginTemplate
    from terragon_ingest.preview.schemas import PreviewSession, SessionStartCreate

log = structlog.get_logger()

_HOSTNAME = re.compile(r"^([a-z0-9.-]+|[0-9a-f:.]+)$")
"""A DNS name or an IP literal (IPv6 without brackets, as `urlsplit` returns it)."""


def normalize_origin(raw: str) -> str:
    """`scheme://host[:port]` only: no user info, path, query or fragment (the SSRF boundary)."""
    try:
        parts = urlsplit(raw.strip())  # raises on a bracketed host that is no IPv6 literal
        port_number = parts.port
    except ValueError:
        raise InvalidRequest(f"upstreamOrigin must be http(s)://host[:port], got {raw!r}") from None
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or not _HOSTNAME.match(parts.hostname)
        or parts.username is not None
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or port_number in {-1, 0}
    ):
        raise InvalidRequest(f"upstreamOrigin must be http(s)://host[:port], got {raw!r}")
    port = f":{port_number}" if port_number else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


async def _check_upstream(deps: PreviewDeps, ctx: AccessContext, origin: str) -> None:
    url = urlsplit(origin)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    allow = deps.settings.preview.ALLOW_PRIVATE_UPSTREAM
    try:
        await checked_addresses(host, port, allow_private=allow)
    except UpstreamUnresolvable as exc:
        raise InvalidRequest(str(exc)) from exc
    except UpstreamRefused as exc:
        raise await deny(deps, ctx, exc.reason, str(exc)) from exc


def preview_url(origins: OriginTemplate, session_id: str, server_port: int | None) -> str:
    return origins.url(session_id, server_port)


async def start_session(
    deps: PreviewDeps, data: SessionStartCreate, trace_id: str, server_port: int | None
) -> SessionStarted:
    origin = normalize_origin(data.upstream_origin)
    # The platform called with the internal token: its denials are never a stranger's.
    ctx = AccessContext(
        EventOrigin.PREVIEW_SESSION_START, trace_id, authenticated=True, user_id=data.user_id
    )
    ctx.thread_id, ctx.thread_chat_id, ctx.run_id = data.thread_id, data.thread_chat_id, data.run_id
    async with connection(deps.pool) as conn:
        thread = await runs.fetch_thread(conn, data.thread_id)
        pointer = await runs.fetch_run_context(conn, data.thread_id, data.thread_chat_id)
        run = await runs.fetch_run(conn, data.run_id)
    if thread is None:
        raise NotFound(f"thread {data.thread_id!r} is not registered")
    ctx.repo_full_name = thread.repo_full_name
    ctx.sandbox_provider = str(thread.sandbox_provider)
    if pointer is None or pointer[0] != data.run_id or run is None:
        active = pointer[0] if pointer else None
        message = f"run {data.run_id!r} is not the active run (active: {active!r})"
        raise await deny(deps, ctx, SecurityReason.BINDING_MISMATCH, message)
    ctx.codesandbox_id = run.codesandbox_id or thread.codesandbox_id
    if not run.frozen_flags.sandbox_preview:
        message = f"previews are off for run {data.run_id!r} (frozen sandboxPreview = false)"
        raise await deny(deps, ctx, SecurityReason.PERMISSION_DENIED, message)
    await _check_upstream(deps, ctx, origin)
    await service.check_access(deps, ctx)
    async with connection(deps.pool) as conn:
        session = await repository.insert_session(
            conn,
            {
                "preview_session_id": service.new_session_id(),
                "thread_id": data.thread_id,
                "thread_chat_id": data.thread_chat_id,
                "run_id": data.run_id,
                "user_id": data.user_id,
                "repo_full_name": thread.repo_full_name,
                "upstream_origin": origin,
                "codesandbox_id": ctx.codesandbox_id,
                "sandbox_provider": ctx.sandbox_provider,
                "ttl_seconds": PREVIEW_SESSION_TTL_SECONDS,
            },
        )
    await _state_changed(deps.pool, session, "created", ctx.origin, trace_id)
    minted = service.mint_exchange_token(deps.keyring, session)
    url = preview_url(deps.origins, session.preview_session_id, server_port)
    return SessionStarted(session.preview_session_id, minted.token, session.expires_at, url)


async def bump_session(
    deps: PreviewDeps, preview_session_id: str, *, revoke: bool, trace_id: str
) -> PreviewSession:
    """Remint (`revoke=False`) or revoke a session, then invalidate the user's cached access."""
    async with connection(deps.pool) as conn:
        session = await repository.bump_revocation(conn, preview_session_id, revoke=revoke)
    if session is None:
        raise NotFound(f"preview session {preview_session_id!r} not found")
    reason = InvalidationReason.SESSION_REVOKED if revoke else InvalidationReason.SESSION_REMINT
    origin = EventOrigin.PREVIEW_MAINTENANCE if revoke else EventOrigin.PREVIEW_SESSION_START
    await invalidate_repo_access(
        deps.access,
        session.user_id,
        session.repo_full_name,
        reason,
        origin=origin,
        trace_id=trace_id,
        thread_id=session.thread_id,
        run_id=session.run_id,
    )
    await _state_changed(deps.pool, session, "revoked" if revoke else "reminted", origin, trace_id)
    return session


async def remint_session(
    deps: PreviewDeps, session_id: str, trace_id: str, server_port: int | None
) -> SessionStarted:
    session = await bump_session(deps, session_id, revoke=False, trace_id=trace_id)
    if session.revoked_at is not None:
        raise InvalidRequest(f"preview session {session_id!r} is revoked; start a new one")
    minted = service.mint_exchange_token(deps.keyring, session)
    url = preview_url(deps.origins, session.preview_session_id, server_port)
    return SessionStarted(session.preview_session_id, minted.token, session.expires_at, url)


async def revoke_session(deps: PreviewDeps, session_id: str, trace_id: str) -> SessionRevoked:
    session = await bump_session(deps, session_id, revoke=True, trace_id=trace_id)
    return SessionRevoked(session.preview_session_id, session.revocation_version)


async def _state_changed(
    pool: Pool, session: PreviewSession, state: str, origin: EventOrigin, trace_id: str
) -> None:
    event = build_event(
        PreviewEventName.SESSION_STATE_CHANGED,
        origin=origin,
        trace_id=trace_id,
        thread_id=session.thread_id,
        thread_chat_id=session.thread_chat_id,
        run_id=session.run_id,
        codesandbox_id=session.codesandbox_id,
        sandbox_provider=session.sandbox_provider,
        preview_session_id=session.preview_session_id,
        user_id=session.user_id,
        properties={"state": state, "revocationVersion": session.revocation_version},
    )
    async with connection(pool) as conn:
        await emit_event(conn, event)
    log.info("preview_session_state_changed", state=state, session=session.preview_session_id)
