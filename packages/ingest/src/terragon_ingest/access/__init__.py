"""Repo access: the Valkey cache of "may this user see this repo's preview?", its one
invalidation path, the permission source behind it, and the GitHub webhooks that keep the
permission tables current (CONTRACT §5).

Call `invalidate_repo_access` for every trigger (it is the only code that deletes access keys);
read decisions through `RepoAccessCache.allowed`.
"""

from __future__ import annotations

from terragon_ingest.access.cache import RepoAccessCache, valkey_errors
from terragon_ingest.access.deps import AccessDeps
from terragon_ingest.access.invalidation import invalidate_repo_access
from terragon_ingest.access.permissions import PermissionSource, PostgresPermissionSource

__all__ = [
    "AccessDeps",
    "PermissionSource",
    "PostgresPermissionSource",
    "RepoAccessCache",
    "invalidate_repo_access",
    "valkey_errors",
]
