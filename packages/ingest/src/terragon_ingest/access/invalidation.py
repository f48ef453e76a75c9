"""`invalidate_repo_access`: the one path that deletes repo-access keys (CONTRACT §5).

Every trigger calls it: GitHub webhooks (team membership, repo visibility, collaborators), ready
actions, thread visibility changes, preview session remint / revoke, a new active run bind. It
bumps the repo's generation first (so a permission check already in flight is not cached), then
deletes the user's key, or every cached user's key of the repo through the repo's index set
(no KEYS/SCAN; keys and index fold the repo name, so a webhook naming `acme/web` drops what
`Acme/Web` cached), and records the reason: a `preview.cache_invalidation` counter, a
`preview.cache.invalidation` event and a log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import structlog

from terragon_core import (
    CACHE_INVALIDATION_EVENT,
    EventOrigin,
    InvalidationReason,
    MetricName,
    repo_access_generation_key,
    repo_access_index_key,
    repo_access_key,
)
from terragon_ingest.access.cache import valkey_errors
from terragon_ingest.db import connection
from terragon_ingest.telemetry import build_event, emit_event, trace_id_from

if TYPE_CHECKING:
    from terragon_ingest.access.deps import AccessDeps

log = structlog.get_logger()

GENERATION_TTL_SECONDS: Final = 24 * 3600
"""Far longer than any permission check; refreshed by every invalidation of the repo."""


async def invalidate_repo_access(
    deps: AccessDeps,
    user_id: str | None,
    repo_full_name: str,
    reason: InvalidationReason,
    *,
    origin: EventOrigin = EventOrigin.PREVIEW_MAINTENANCE,
    trace_id: str | None = None,
    thread_id: str | None = None,
    run_id: str | None = None,
) -> int:
    """Drop the cached decision of `user_id` on `repo_full_name` (every user's when None).

    Returns the number of keys deleted. Raises `CacheUnavailable` when Valkey is down (nothing
    is recorded then: the caller retries, or the TTL bounds the staleness).
    """
    env = deps.settings.server.ENV
    valkey = deps.valkey
    generation = repo_access_generation_key(env, repo_full_name)
    with valkey_errors():
        async with valkey.pipeline(transaction=True) as pipe:
            pipe.incr(generation)
            pipe.expire(generation, GENERATION_TTL_SECONDS)
            await pipe.execute()
        if user_id is not None:
            users = [user_id]
        else:
            members = await valkey.smembers(repo_access_index_key(env, repo_full_name))  # type: ignore[misc]
            users = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        keys = [repo_access_key(env, user, repo_full_name) for user in users]
        deleted = int(await valkey.delete(*keys)) if keys else 0
    deps.metrics.inc(
        MetricName.CACHE_INVALIDATION,
        repo=repo_full_name,
        user=user_id,
        provider=None,
        reason=reason.value,
    )
    event = build_event(
        CACHE_INVALIDATION_EVENT,
        origin=origin,
        trace_id=trace_id or trace_id_from(None),
        thread_id=thread_id,
        thread_chat_id=None,
        run_id=run_id,
        codesandbox_id=None,
        sandbox_provider=None,
        user_id=user_id,
        properties={
            "reason": reason.value,
            "repoFullName": repo_full_name,
            "scope": "user" if user_id is not None else "repo",
            "keysDeleted": deleted,
        },
    )
    async with connection(deps.pool) as conn:
        await emit_event(conn, event)
    log.info(
        "repo_access_invalidated",
        reason=reason.value,
        repo=repo_full_name,
        user_id=user_id,
        keys_deleted=deleted,
    )
    return deleted
