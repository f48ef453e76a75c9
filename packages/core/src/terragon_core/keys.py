"""Key formats shared with other programs: cache keys and object-store keys (CONTRACT §4, §5)."""

from __future__ import annotations

from datetime import date

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


def repo_access_key(env: str, user_id: str, repo_full_name: str) -> str:
    """`terragon:v1:preview:repo-access:{env}:{userId}:{repoFullName}`."""
    return f"{REPO_ACCESS_KEY_PREFIX}:{env}:{user_id}:{repo_full_name}"


def repo_access_positive_ttl_seconds(
    preview_session_ttl_seconds: int = PREVIEW_SESSION_TTL_SECONDS,
) -> int:
    """Positive TTL: `min(60, previewSessionTTLSeconds)`."""
    return min(REPO_ACCESS_POSITIVE_TTL_CAP_SECONDS, preview_session_ttl_seconds)


def repo_access_ttl_seconds(allowed: bool) -> int:
    """TTL for a cached decision: positive answers live 60 s, negative ones 5 s."""
    return repo_access_positive_ttl_seconds() if allowed else REPO_ACCESS_NEGATIVE_TTL_SECONDS


def quarantine_object_key(thread_id: str, day: date, object_id: str) -> str:
    """`preview/daemon-quarantine/{threadId}/{yyyy-mm-dd}/{uuid}.json`."""
    return f"{QUARANTINE_OBJECT_PREFIX}/{thread_id}/{day.isoformat()}/{object_id}.json"


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
