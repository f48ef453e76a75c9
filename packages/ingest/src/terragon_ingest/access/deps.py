"""What the access domain uses: the pool and Valkey behind the cache, the metrics its
invalidations count, and the one `RepoAccessCache` (its single-flight futures are shared by every
request of the process)."""

from __future__ import annotations

from dataclasses import dataclass

from valkey.asyncio import Valkey

from terragon_ingest.access.cache import RepoAccessCache
from terragon_ingest.access.permissions import PostgresPermissionSource
from terragon_ingest.db import Pool
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics


@dataclass(frozen=True, slots=True)
class AccessDeps:
    settings: Settings
    pool: Pool
    valkey: Valkey
    metrics: Metrics
    cache: RepoAccessCache

    @classmethod
    def build(cls, settings: Settings, pool: Pool, valkey: Valkey, metrics: Metrics) -> AccessDeps:
        cache = RepoAccessCache(
            valkey,
            PostgresPermissionSource(pool),
            env=settings.server.ENV,
            lock_ms=settings.preview.FILL_LOCK_MS,
        )
        return cls(settings=settings, pool=pool, valkey=valkey, metrics=metrics, cache=cache)
