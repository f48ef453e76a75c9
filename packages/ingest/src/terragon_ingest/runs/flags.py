"""Feature-flag resolution (CONTRACT §2): user override > repo override > global > default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from terragon_core import FLAG_DEFAULTS, FeatureFlagName, FrozenFlags
from terragon_ingest.runs import repository

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

_PRECEDENCE = {"global": 0, "repo": 1, "user": 2}


def effective_flags(rows: list[tuple[str, str, bool]]) -> dict[FeatureFlagName, bool]:
    """Fold flag rows `(name, scope, enabled)` into effective values, most specific wins."""
    values = dict(FLAG_DEFAULTS)
    rank: dict[FeatureFlagName, int] = {}
    for name, scope, enabled in rows:
        flag = FeatureFlagName(name)
        if _PRECEDENCE[scope] >= rank.get(flag, -1):
            values[flag] = enabled
            rank[flag] = _PRECEDENCE[scope]
    return values


async def resolve_frozen_flags(conn: AsyncConn, repo_full_name: str, user_id: str) -> FrozenFlags:
    """The snapshot to freeze into a new run."""
    values = effective_flags(await repository.fetch_flag_rows(conn, repo_full_name, user_id))
    return FrozenFlags(
        sandbox_preview=values[FeatureFlagName.SANDBOX_PREVIEW],
        daemon_run_id_strict=values[FeatureFlagName.DAEMON_RUN_ID_STRICT],
        rollout_phase=None,
    )


async def set_flag(
    conn: AsyncConn,
    name: FeatureFlagName,
    enabled: bool,
    *,
    repo_full_name: str | None = None,
    user_id: str | None = None,
) -> tuple[str, str]:
    """Write one flag value; returns `(scope, scope_key)`. Runs already started keep theirs."""
    if repo_full_name and user_id:
        raise ValueError("give repoFullName or userId, not both")
    scope, key = (
        ("user", user_id)
        if user_id
        else ("repo", repo_full_name)
        if repo_full_name
        else ("global", "")
    )
    await repository.upsert_flag(conn, name.value, scope, key or "", enabled)
    return scope, key or ""
