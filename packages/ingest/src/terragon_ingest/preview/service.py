"""Preview access decisions (CONTRACT §5): session start, exchange, cookie check, token mints.

Every path that grants access asks the repo-access cache, and a Valkey error anywhere on the
exchange, proxy or subscription-token path is a `cache_unavailable` denial (503): never a direct
permission check instead. Each denial goes through `denials.deny` (event + counter).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

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
from terragon_ingest.errors import CacheUnavailable, NotFound
from terragon_ingest.preview import repository
from terragon_ingest.preview.denials import AccessContext, deny
from terragon_ingest.preview.tokens import MintedToken, TokenRejected

if TYPE_CHECKING:
    from terragon_ingest.db import Pool
    from terragon_ingest.preview.deps import PreviewDeps
    from terragon_ingest.preview.schemas import PreviewSession
    from terragon_ingest.preview.tokens import PreviewKeyring

log = structlog.get_logger()


def new_session_id() -> str:
    return secrets.token_hex(16)


async def check_access(deps: PreviewDeps, ctx: AccessContext) -> None:
    """Deny unless the cache allows `ctx.user_id` on `ctx.repo_full_name` (fail closed)."""
    assert ctx.user_id is not None and ctx.repo_full_name is not None
    try:
        allowed = await deps.access.cache.allowed(ctx.user_id, ctx.repo_full_name)
    except CacheUnavailable as exc:
        raise await deny(deps, ctx, SecurityReason.CACHE_UNAVAILABLE, str(exc)) from exc
    if not allowed:
        message = f"user {ctx.user_id!r} may not see previews of {ctx.repo_full_name!r}"
        raise await deny(deps, ctx, SecurityReason.PERMISSION_DENIED, message)


async def live_session(pool: Pool, ctx: AccessContext) -> PreviewSession:
    """The session named by the request's Host (`ctx.preview_session_id`), if it is live:
    it exists, is not revoked and has not expired. Anything else is a 404 (CONTRACT §5)."""
    async with connection(pool) as conn:
        session = await repository.fetch_session(conn, str(ctx.preview_session_id))
    if session is None or session.revoked_at is not None or session.expires_at <= datetime.now(UTC):
        log.info("preview_origin_not_live", preview_session_id=ctx.preview_session_id)
        raise NotFound("no live preview session at this origin")
    ctx.bind(session)
    return session


async def verify_token(
    deps: PreviewDeps,
    ctx: AccessContext,
    audience: PreviewTokenAudience,
    tokens: Sequence[str],
    session: PreviewSession,
) -> None:
    """Accept the first of `tokens` that is a valid `audience` token of this live `session`.

    Each value is checked whole, in order: signature/kid/aud/iss/exp/iat (`signature_mismatch`,
    `expired`); `sid` equals the session of the Host (a token of another session is worth
    nothing here: `signature_mismatch`, 401); `rv` equals its `revocationVersion` (`revoked`);
    `sub` equals its user (`binding_mismatch`). A value failing any check is skipped, so values
    planted beside the real one cannot lock the user out; when none passes, the denial names the
    value that got furthest. The request is then `authenticated`; an exchange token is spent
    last (`token_replay`, and a spent token is no credential).
    """
    if not tokens:
        raise await deny(deps, ctx, SecurityReason.SIGNATURE_MISMATCH, "no preview token")
    keyring = deps.keyring
    best: tuple[int, TokenRejected] | None = None
    claims: dict[str, Any] | None = None
    for token in tokens:
        try:
            candidate = keyring.verify(audience, token)
        except TokenRejected as exc:
            rejected = (0, exc)
        else:
            rejected = _binding_rejection(candidate, session)
            if rejected is None:
                claims = candidate
                break
        if best is None or rejected[0] > best[0]:
            best = rejected
    if claims is None:
        assert best is not None
        raise await deny(deps, ctx, best[1].reason, str(best[1]))
    ctx.authenticated = True
    if audience is PreviewTokenAudience.EXCHANGE:
        await _spend(deps, ctx, claims)


def _binding_rejection(
    claims: dict[str, Any], session: PreviewSession
) -> tuple[int, TokenRejected] | None:
    """Why a verified token is not this session's credential (ranked by how far it got)."""
    if claims["sid"] != session.preview_session_id:
        message = "token belongs to another preview session"
        return 1, TokenRejected(SecurityReason.SIGNATURE_MISMATCH, message)
    if claims["rv"] != session.revocation_version:
        return 2, TokenRejected(SecurityReason.REVOKED, "preview session was reminted")
    if claims["sub"] != session.user_id:
        return 3, TokenRejected(SecurityReason.BINDING_MISMATCH, "token user differs")
    return None


async def _spend(deps: PreviewDeps, ctx: AccessContext, claims: dict[str, Any]) -> None:
    """Replay protection: `SET NX EX` on the token's `jti` and on its `nonce`."""
    env = deps.settings.server.ENV
    ttl = max(1, int(claims["exp"]) - int(datetime.now(UTC).timestamp()))
    ttl += PREVIEW_TOKEN_LEEWAY_SECONDS
    try:
        with valkey_errors():
            for claim in ("jti", "nonce"):
                key = preview_token_replay_key(env, claim, str(claims[claim]))
                if not await deps.valkey.set(key, "1", nx=True, ex=ttl):
                    message = f"token {claim} was already used"
                    ctx.authenticated = False  # a spent token is anyone's who saw it
                    raise await deny(deps, ctx, SecurityReason.TOKEN_REPLAY, message)
    except CacheUnavailable as exc:
        raise await deny(deps, ctx, SecurityReason.CACHE_UNAVAILABLE, str(exc)) from exc


def mint_exchange_token(keyring: PreviewKeyring, session: PreviewSession) -> MintedToken:
    return keyring.mint(
        PreviewTokenAudience.EXCHANGE,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS,
        nonce=True,
    )


def mint_cookie_token(keyring: PreviewKeyring, session: PreviewSession) -> MintedToken:
    remaining = int((session.expires_at - datetime.now(UTC)).total_seconds())
    return keyring.mint(
        PreviewTokenAudience.COOKIE,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=max(1, min(PREVIEW_SESSION_TTL_SECONDS, remaining)),
    )


def mint_broadcast_token(keyring: PreviewKeyring, session: PreviewSession, ttl: int) -> MintedToken:
    return keyring.mint(
        PreviewTokenAudience.BROADCAST,
        user_id=session.user_id,
        session_id=session.preview_session_id,
        revocation_version=session.revocation_version,
        ttl_seconds=ttl,
    )
