"""Key formats shared with other programs: cache keys and object-store keys (CONTRACT §4, §5)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Final

from terragon_core.constants import (
    PREVIEW_SESSION_TTL_SECONDS,
    REPO_ACCESS_NEGATIVE_TTL_SECONDS,
    REPO_ACCESS_POSITIVE_TTL_CAP_SECONDS,
)

REPO_ACCESS_KEY_PREFIX = "terragon:v1:preview:repo-access"
QUARANTINE_OBJECT_PREFIX = "preview/daemon-quarantine"
QUARANTINE_OFFLOAD_KEY_PREFIX = "terragon:v1:preview:quarantine-offload"
RUN_BUDGET_KEY_PREFIX = "terragon:v1:ingest:run-budget"
RUN_BUDGET_MESSAGES_FIELD = "messages"
RUN_BUDGET_BYTES_FIELD = "bytes"


_ASCII_FOLD: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_github_name(name: str) -> str:
    """A GitHub name (owner, repo, login) in the one form compared and keyed: GitHub names are
    case-insensitive and ASCII, so `A`-`Z` fold to `a`-`z` and nothing else changes.

    The SQL side spells the same fold `lower(x COLLATE "C")` (ASCII only, in every database
    locale); a wider fold here (`str.lower`) could give two names one cache key while the
    permission check keeps them apart.
    """
    return name.translate(_ASCII_FOLD)


def key_component(value: str) -> str:
    """One component of a `:`-separated key: `%` → `%25`, `:` → `%3A` (CONTRACT §5), so no
    component can contain the separator and two different tuples never share a key."""
    return value.replace("%", "%25").replace(":", "%3A")


def repo_access_key(env: str, user_id: str, repo_full_name: str) -> str:
    """`terragon:v1:preview:repo-access:{env}:{userId}:{repoFullName}`: the repo name folded
    (`fold_github_name`), every component escaped (`key_component`)."""
    return ":".join(
        (
            REPO_ACCESS_KEY_PREFIX,
            key_component(env),
            key_component(user_id),
            key_component(fold_github_name(repo_full_name)),
        )
    )


def repo_access_positive_ttl_seconds(
    preview_session_ttl_seconds: int = PREVIEW_SESSION_TTL_SECONDS,
) -> int:
    """Positive TTL: `min(60, previewSessionTTLSeconds)`."""
    return min(REPO_ACCESS_POSITIVE_TTL_CAP_SECONDS, preview_session_ttl_seconds)


def repo_access_ttl_seconds(allowed: bool) -> int:
    """TTL for a cached decision: positive answers live 60 s, negative ones 5 s."""
    return repo_access_positive_ttl_seconds() if allowed else REPO_ACCESS_NEGATIVE_TTL_SECONDS


QUARANTINE_THREAD_KEY_HEX_DIGITS = 32


def quarantine_thread_key(thread_id: str) -> str:
    """`threadKey`: the first 32 hex digits of sha256(threadId as UTF-8). A threadId may hold any
    character (`..`, `/`, `%`, control characters); the key holds only `[0-9a-f]`."""
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:QUARANTINE_THREAD_KEY_HEX_DIGITS]


def quarantine_object_key(thread_id: str, day: date, object_id: str) -> str:
    """`preview/daemon-quarantine/{threadKey}/{yyyy-mm-dd}/{uuid}.json` (`quarantine_thread_key`).

    Only new offloads use it: a row stores the key it was written under and every read uses the
    stored key, so objects written under the older `{threadId}` format keep their pointers."""
    thread_key = quarantine_thread_key(thread_id)
    return f"{QUARANTINE_OBJECT_PREFIX}/{thread_key}/{day.isoformat()}/{object_id}.json"


def quarantine_offload_rate_key(env: str, repo_full_name: str, minute: int) -> str:
    """`terragon:v1:preview:quarantine-offload:{env}:rate:{repoFullName}:{epochMinute}` (INCR+EXPIRE)."""
    return f"{QUARANTINE_OFFLOAD_KEY_PREFIX}:{env}:rate:{repo_full_name}:{minute}"


def quarantine_offload_pending_key(env: str) -> str:
    """Sorted set of offloaded object keys by write time; maintenance removes objects without a row."""
    return f"{QUARANTINE_OFFLOAD_KEY_PREFIX}:{env}:pending"


def run_budget_key(env: str, run_id: str, window: int) -> str:
    """`terragon:v1:ingest:run-budget:{env}:{runId}:{epochMinute}`: a hash of the run's usage in
    that one-minute window, fields `messages` and `bytes` (HINCRBY from every worker, EXPIRE)."""
    return f"{RUN_BUDGET_KEY_PREFIX}:{env}:{run_id}:{window}"
