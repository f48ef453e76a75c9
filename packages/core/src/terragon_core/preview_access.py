"""Names of preview access (CONTRACT §5): token audiences, lifetimes, the cookie, and the Valkey
keys kept beside the repo-access cache (single-flight lock, fan-out index, generation, replay).

The cache key itself is `keys.repo_access_key`; the keys here never share its prefix, so
"who writes or deletes access keys" stays a question about one prefix.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from terragon_core.keys import fold_github_name, key_component

PREVIEW_TOKEN_ISSUER: Final = "terragon-preview"
PREVIEW_EXCHANGE_TOKEN_MAX_TTL_SECONDS: Final = 300
"""An exchange token lives at most this long (`exp - iat`)."""
PREVIEW_SUBSCRIPTION_TOKEN_TTL_SECONDS: Final = 60
PREVIEW_TOKEN_LEEWAY_SECONDS: Final = 60
"""Clock skew accepted on `exp` and `iat`."""
PREVIEW_COOKIE_NAME: Final = "terragon_preview"
"""Set on the session's own origin only: host-only (no `Domain`), `Path=/`, `HttpOnly`,
`SameSite=Lax`, `Secure` when the origin is https, `Max-Age=1800`."""
PREVIEW_SECURE_COOKIE_NAME: Final = "__Host-" + PREVIEW_COOKIE_NAME
"""The cookie's name on an https origin: browsers accept a `__Host-` cookie only from that very
host, `Secure`, `Path=/` and without `Domain`, so no sibling origin can set one."""
PREVIEW_COOKIE_MAX_VALUES: Final = 32
"""At most this many values of the cookie's name are tried per request (bounded work)."""


def preview_cookie_name(secure: bool) -> str:
    """The preview cookie's name on an https (`secure`) or http session origin."""
    return PREVIEW_SECURE_COOKIE_NAME if secure else PREVIEW_COOKIE_NAME


PREVIEW_SESSION_ID_PLACEHOLDER: Final = "{previewSessionId}"
"""Where the session id goes in the host of `TERRAGON_PREVIEW_ORIGIN` (an OpenAPI server variable)."""
PREVIEW_DEFAULT_ORIGIN: Final = "http://{previewSessionId}.preview.localhost"
"""The default session origin, followed by `:<port>` of the server (browsers and curl send
`*.localhost` to the loopback address, RFC 6761)."""
PREVIEW_RESERVED_PREFIX: Final = "/__terragon/"
"""On a session origin this path prefix belongs to the service; every other path is the upstream's."""
PREVIEW_EXCHANGE_PATH: Final = "/__terragon/exchange"
PREVIEW_SUBSCRIPTION_TOKEN_PATH: Final = "/__terragon/subscription-token"
PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS: Final = 10
"""Connecting to a preview upstream takes at most this long."""
PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS: Final = 60
"""An upstream response (a streaming one too) ends after this long without a byte."""
CACHE_INVALIDATION_EVENT: Final = "preview.cache.invalidation"
"""Event recorded by `invalidate_repo_access` (one per call, with the reason)."""

REPO_ACCESS_LOCK_PREFIX: Final = "terragon:v1:preview:repo-access-lock"
REPO_ACCESS_INDEX_PREFIX: Final = "terragon:v1:preview:repo-access-index"
REPO_ACCESS_GENERATION_PREFIX: Final = "terragon:v1:preview:repo-access-gen"
PREVIEW_TOKEN_REPLAY_PREFIX: Final = "terragon:v1:preview:token-replay"


class PreviewTokenAudience(StrEnum):
    """`aud` of each preview token; each audience has its own signing keys."""

    EXCHANGE = "preview-session-exchange"
    COOKIE = "preview-session-cookie"
    BROADCAST = "preview-session-broadcast"


def repo_access_lock_key(env: str, user_id: str, repo_full_name: str) -> str:
    """Short `SET NX PX` lock: one permission check per key across replicas (components as in
    `repo_access_key`: the repo folded, each escaped)."""
    return ":".join(
        (
            REPO_ACCESS_LOCK_PREFIX,
            key_component(env),
            key_component(user_id),
            key_component(fold_github_name(repo_full_name)),
        )
    )


def repo_access_index_key(env: str, repo_full_name: str) -> str:
    """Set of user ids with a cached decision for the repo (fan-out without KEYS/SCAN)."""
    return _repo_key(REPO_ACCESS_INDEX_PREFIX, env, repo_full_name)


def repo_access_generation_key(env: str, repo_full_name: str) -> str:
    """Bumped by every invalidation of the repo; a check that raced one is not cached."""
    return _repo_key(REPO_ACCESS_GENERATION_PREFIX, env, repo_full_name)


def _repo_key(prefix: str, env: str, repo_full_name: str) -> str:
    return f"{prefix}:{key_component(env)}:{key_component(fold_github_name(repo_full_name))}"


def preview_token_replay_key(env: str, claim: str, value: str) -> str:
    """`SET NX EX` marker of a spent `jti` or `nonce`."""
    return f"{PREVIEW_TOKEN_REPLAY_PREFIX}:{env}:{claim}:{value}"
