"""The repo-access cache (CONTRACT §5): one Valkey key per (env, user, repo).

`allowed()` reads `terragon:v1:preview:repo-access:{env}:{userId}:{repoFullName}` (the repo name
folded, every component escaped: `terragon_core.repo_access_key`; the permission check compares
names with the same fold, so every casing of a repo shares one decision); on a miss it runs the
permission check once and caches the answer (60 s allowed, 5 s denied). Concurrent
misses for one key make one check: callers in this process share an asyncio future, replicas
share a short `SET NX PX` lock and wait for the key to appear. A check that raced an
invalidation of the repo (its generation moved) answers its caller but is not cached.

This module writes access keys and never deletes them: `invalidation.invalidate_repo_access` is
the only code that does. Any Valkey error or timeout raises `CacheUnavailable` (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import structlog
from valkey.exceptions import ValkeyError

from terragon_core import (
    repo_access_generation_key,
    repo_access_index_key,
    repo_access_key,
    repo_access_lock_key,
    repo_access_positive_ttl_seconds,
    repo_access_ttl_seconds,
)
from terragon_ingest.errors import CacheUnavailable

if TYPE_CHECKING:
    from valkey.asyncio import Valkey

    from terragon_ingest.access.permissions import PermissionSource

log = structlog.get_logger()

ALLOWED: Final = "1"
DENIED: Final = "0"
INDEX_TTL_SECONDS: Final = 2 * repo_access_positive_ttl_seconds()
"""An index set outlives every access key it lists; each populate refreshes it."""

# KEYS: access key, lock key. ARGV: lock token, lock ms.
# The cached value if there is one, else "" when this caller took the lock, else nil (busy).
_ACQUIRE: Final = """
local value = redis.call('GET', KEYS[1])
if value then return value end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return false
"""

# KEYS: access key, generation key, index key, lock key.
# ARGV: generation seen before the check, value, ttl, user id, index ttl, lock token.
_POPULATE: Final = """
local gen = redis.call('GET', KEYS[2]) or ''
local stored = 0
if gen == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  stored = 1
end
if redis.call('GET', KEYS[4]) == ARGV[6] then redis.call('DEL', KEYS[4]) end
return stored
"""


@contextlib.contextmanager
def valkey_errors() -> Iterator[None]:
    """Valkey errors and timeouts become `CacheUnavailable`: access paths fail closed."""
    try:
        yield
    except (ValkeyError, OSError, TimeoutError) as exc:
        raise CacheUnavailable(
            f"repo-access cache unavailable: {type(exc).__name__}: {exc}"
        ) from exc


class RepoAccessCache:
    """Cached permission decisions with single-flight misses. One instance per app."""

    def __init__(
        self,
        valkey: Valkey,
        source: PermissionSource,
        *,
        env: str,
        lock_ms: int = 3000,
        poll_seconds: float = 0.01,
    ) -> None:
        self._valkey = valkey
        self._source = source
        self._env = env
        self._lock_ms = lock_ms
        self._poll_seconds = poll_seconds
        self._flights: dict[str, asyncio.Future[bool]] = {}
        self.waiting = 0
        """Callers currently parked on another caller's check (this process or a replica)."""

    async def allowed(self, user_id: str, repo_full_name: str) -> bool:
        """The cached decision, or one permission check shared by every concurrent miss."""
        key = repo_access_key(self._env, user_id, repo_full_name)
        with valkey_errors():
            cached = await self._valkey.get(key)
        if cached is not None:
            return _text(cached) == ALLOWED
        flight = self._flights.get(key)
        if flight is not None:
            self.waiting += 1
            try:
                return await asyncio.shield(flight)
            finally:
                self.waiting -= 1
        flight = asyncio.get_running_loop().create_future()
        flight.add_done_callback(_retrieve)
        self._flights[key] = flight
        try:
            result = await self._fill(key, user_id, repo_full_name)
        except BaseException as exc:
            cancelled = CacheUnavailable("the shared permission check was cancelled; retry")
            flight.set_exception(exc if isinstance(exc, Exception) else cancelled)
            raise
        finally:
            self._flights.pop(key, None)
        flight.set_result(result)
        return result

    async def _fill(self, key: str, user_id: str, repo_full_name: str) -> bool:
        lock = repo_access_lock_key(self._env, user_id, repo_full_name)
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self._lock_ms / 1000
        waiting = False
        try:
            while True:
                with valkey_errors():
                    got = await self._valkey.eval(  # type: ignore[misc]
                        _ACQUIRE, 2, key, lock, token, str(self._lock_ms)
                    )
                if got == b"":
                    break
                if got is not None:
                    return _text(got) == ALLOWED
                if loop.time() > deadline:
                    log.warning(
                        "repo_access_fill_lock_timeout",
                        key=key,
                        action="a replica held the fill lock too long; checking directly",
                    )
                    break
                if not waiting:
                    waiting, self.waiting = True, self.waiting + 1
                await asyncio.sleep(self._poll_seconds)
        finally:
            if waiting:
                self.waiting -= 1
        return await self._check_and_populate(key, lock, token, user_id, repo_full_name)

    async def _check_and_populate(
        self, key: str, lock: str, token: str, user_id: str, repo_full_name: str
    ) -> bool:
        generation_key = repo_access_generation_key(self._env, repo_full_name)
        with valkey_errors():
            generation = await self._valkey.get(generation_key)
        allowed = await self._source.check(user_id, repo_full_name)
        with valkey_errors():
            stored = await self._valkey.eval(  # type: ignore[misc]
                _POPULATE,
                4,
                key,
                generation_key,
                repo_access_index_key(self._env, repo_full_name),
                lock,
                _text(generation),
                ALLOWED if allowed else DENIED,
                str(repo_access_ttl_seconds(allowed)),
                user_id,
                str(INDEX_TTL_SECONDS),
                token,
            )
        log.debug(
            "repo_access_checked",
            user_id=user_id,
            repo=repo_full_name,
            allowed=allowed,
            cached=bool(stored),
        )
        return allowed


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _retrieve(future: asyncio.Future[bool]) -> None:
    """Mark a failed flight's exception as retrieved when no other caller was waiting."""
    if not future.cancelled():
        future.exception()
