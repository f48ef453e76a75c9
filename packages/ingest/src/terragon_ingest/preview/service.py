"""Preview access decisions (CONTRACT §5): session start, exchange, cookie check, token mints.

Every path that grants access asks the repo-access cache, and a Valkey error anywhere on the
exchange, proxy or subscription-token path is a `cache_unavailable` denial (503): never a direct
permission check instead. Each denial goes through `denials.deny` (event + counter).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from terragon_core import (
    PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS,
    PREVIEW_SESSION_TTL_SECONDS,
    PREVIEW_TOKEN_LEEWAY_SECONDS,
    PreviewTokenAudience,
    SecurityReason,
    preview_token_replay_key,
)
from terragon_ingest.access import valkey_errors
from terragon_ingest.db import connection
from terragon_ingest.errors import CacheUnavailable
from terragon_ingest.preview import repository
from terragon_ingest.preview.denials import AccessContext, deny
from terragon_ingest.preview.lifespan import access_cache, preview_runtime
from terragon_ingest.preview.tokens import MintedToken, TokenRejected

if TYPE_CHECKING:
    from terragon_ingest.preview.schemas import PreviewSession
    from terragon_ingest.services import Services


def new_session_id() -> str:
    return secrets.token_hex(16)


async def check_access(services: Services, ctx: AccessContext) -> None:
    """Deny unless the cache allows `ctx.user_id` on `ctx.repo_full_name` (fail closed)."""
    assert ctx.user_id is not None and ctx.repo_full_name is not None
    try:
        allowed = await access_cache(services).allowed(ctx.user_id, ctx.repo_full_name)
    except CacheUnavailable as exc:
        raise await deny(services, ctx, SecurityReason.CACHE_UNAVAILABLE, str(exc)) from exc
    if not allowed:
        message = f"user {ctx.user_id!r} may not see previews of {ctx.repo_full_name!r}"
        raise await deny(services, ctx, SecurityReason.PERMISSION_DENIED, message)


async def verify_token(
    services: Services, ctx: AccessContext, audience: PreviewTokenAudience, token: str | None
) -> PreviewSession:
    """Verify a token of `audience` for the session of `ctx`; return the live session row.

    Checks, in order: signature/kid/aud/iss/exp/iat (`signature_mismatch`, `expired`), `sid`
    equals the path's session (`binding_mismatch`), the row exists and is neither revoked nor
    past its expiry, `rv` equals its `revocationVersion` (`revoked`, `expired`), `sub` equals
    its user (`binding_mismatch`).
    """
    if not token:
        raise await deny(services, ctx, SecurityReason.SIGNATURE_MISMATCH, "no preview token")
    try:
        claims = preview_runtime(services).keyring.verify(audience, token)
    except TokenRejected as exc:
        raise await deny(services, ctx, exc.reason, str(exc)) from exc
    if claims["sid"] != ctx.preview_session_id:
        message = f"token is bound to session {claims['sid']!r}, not {ctx.preview_session_id!r}"
        raise await deny(services, ctx, SecurityReason.BINDING_MISMATCH, message)
    async with connection(services.pool) as conn:
        session = await repository.fetch_session(conn, str(ctx.preview_session_id))
    if session is None:
        raise await deny(services, ctx, SecurityReason.REVOKED, "preview session not found")
    ctx.bind(session)
    if session.revoked_at is not None or claims["rv"] != session.revocation_version:
        raise await deny(services, ctx, SecurityReason.REVOKED, "preview session was revoked")
    if session.expires_at <= datetime.now(UTC):
        raise await deny(services, ctx, SecurityReason.EXPIRED, "preview session expired")
    if claims["sub"] != session.user_id:
        raise await deny(services, ctx, SecurityReason.BINDING_MISMATCH, "token user differs")
    if audience is PreviewTokenAudience.EXCHANGE:
        await _spend(services, ctx, claims)
    return session


async def _spend(services: Services, ctx: AccessContext, claims: dict[str, Any]) -> None:
    """Replay protection: `SET NX EX` on the token's `jti` and on its `nonce`."""
    env = services.settings.server.ENV
    ttl = max(1, int(claims["exp"]) - int(datetime.now(UTC).timestamp()))
    ttl += PREVIEW_TOKEN_LEEWAY_SECONDS
    try:
        with valkey_errors():
            for claim in ("jti", "nonce"):
                key = preview_token_replay_key(env, claim, str(claims[claim]))
                if not await services.valkey.set(key, "1", nx=True, ex=ttl):
                    message = f"token {claim} was already used"
                    raise await deny(services, ctx, SecurityReason.TOKEN_REPLAY, message)
    except CacheUnavailable as exc:
        raise await deny(services, ctx, SecurityReason.CACHE_UNAVAILABLE, str(exc)) from exc


def mint_exchange_token(services: Services, session: PreviewSession) -> MintedToken:
    return preview_runtime(services).keyring.mint(
        PreviewTokenAudience.EXCHANGE,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS,
        nonce=True,
    )


def mint_cookie_token(services: Services, session: PreviewSession) -> MintedToken:
    remaining = int((session.expires_at - datetime.now(UTC)).total_seconds())
    return preview_runtime(services).keyring.mint(
        PreviewTokenAudience.COOKIE,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=max(1, min(PREVIEW_SESSION_TTL_SECONDS, remaining)),
    )


def mint_broadcast_token(services: Services, session: PreviewSession, ttl: int) -> MintedToken:
    return preview_runtime(services).keyring.mint(
        PreviewTokenAudience.BROADCAST,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=ttl,
    )
