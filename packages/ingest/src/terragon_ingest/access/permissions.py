"""Who may see a repo's previews: the permission source behind the repo-access cache.

`PermissionSource` is the interface the cache calls on a miss. The default,
`PostgresPermissionSource`, grants access when any of these holds:

- the user owns a thread on the repo (the thread's owner);
- the user's linked GitHub login is a collaborator of the repo;
- the login is a member of a team that has the repo.

Repo names and logins compare case-insensitively (GitHub's are; a case-only rename keeps the
repository): the SQL folds both sides with `lower(x COLLATE "C")`, the cache key's fold.

A public repo grants nothing by itself (CONTRACT §5): a preview shows the sandbox's uncommitted
state, which is not public because the repo is. The GitHub tables are kept current by
`POST /api/webhooks/github` (visibility changes still invalidate: a custom source may read it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from terragon_ingest.access import repository
from terragon_ingest.db import connection

if TYPE_CHECKING:
    from terragon_ingest.db import Pool


class PermissionSource(ABC):
    """The direct permission check the cache falls back to on a miss."""

    @abstractmethod
    async def check(self, user_id: str, repo_full_name: str) -> bool:
        """True when `user_id` may see previews of `repo_full_name`."""


class PostgresPermissionSource(PermissionSource):
    """Thread owner, collaborators and team members, read from Postgres."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def check(self, user_id: str, repo_full_name: str) -> bool:
        async with connection(self._pool) as conn:
            return await repository.fetch_repo_access(conn, user_id, repo_full_name)
