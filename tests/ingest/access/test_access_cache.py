"""The repo-access cache against real Valkey and Postgres: exact key, TTLs read back with `TTL`,
single-flight under a stampede (several "replicas"), invalidation and its fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import valkey.asyncio as valkey_asyncio

from terragon_core import EventOrigin, InvalidationReason, MetricName
from terragon_ingest.access import PostgresPermissionSource, RepoAccessCache, invalidate_repo_access
from terragon_ingest.access.deps import AccessDeps
from terragon_ingest.db import create_pool
from terragon_ingest.telemetry import Metrics
from tests.fixtures.waiting import until

KEY = "terragon:v1:preview:repo-access:test:{user}:acme/web"


class CountingSource(PostgresPermissionSource):
    """The real Postgres check, counted, optionally held until `gate` opens."""

    def __init__(self, pool, gate: asyncio.Event | None = None) -> None:
        super().__init__(pool)
        self.calls = 0
        self.called = asyncio.Event()
        self.gate = gate

    async def check(self, user_id: str, repo_full_name: str) -> bool:
        self.calls += 1
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        return await super().check(user_id, repo_full_name)


@pytest.fixture(name="deps")
async def fx_deps(settings) -> AsyncIterator[AccessDeps]:
    """The access domain's deps on this test's event loop (the app of `client` runs on a loop of its own)."""
    pool = create_pool(settings.db.URL, min_size=1, max_size=4, timeout=5)
    await pool.open(wait=True)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO thread (thread_id, user_id, repo_full_name, sandbox_provider, "
            "codesandbox_id) VALUES ('thread-1', 'user-1', 'acme/web', 'manual', 'sb-1')"
        )
    client = valkey_asyncio.from_url(settings.valkey.URL)
    yield AccessDeps.build(settings, pool, client, Metrics())
    await client.aclose()
    await pool.close()


async def test_allowed_answer_is_cached_under_the_exact_key_for_60_seconds(deps) -> None:
    raw = deps.valkey
    source = CountingSource(deps.pool)
    cache = RepoAccessCache(deps.valkey, source, env="test")
    assert await cache.allowed("user-1", "acme/web") is True
    assert await raw.get(KEY.format(user="user-1")) == b"1"
    assert await raw.ttl(KEY.format(user="user-1")) == 60
    assert await cache.allowed("user-1", "acme/web") is True
    assert source.calls == 1  # the second answer came from Valkey


async def test_denied_answer_is_cached_for_5_seconds(deps) -> None:
    raw = deps.valkey
    cache = RepoAccessCache(deps.valkey, CountingSource(deps.pool), env="test")
    assert await cache.allowed("stranger", "acme/web") is False
    assert await raw.get(KEY.format(user="stranger")) == b"0"
    assert await raw.ttl(KEY.format(user="stranger")) == 5


async def test_hundred_concurrent_misses_across_replicas_make_one_check(deps) -> None:
    gate = asyncio.Event()
    source = CountingSource(deps.pool, gate)
    # Four "replicas": separate caches (own in-process futures) sharing Valkey and the source.
    replicas = [RepoAccessCache(deps.valkey, source, env="test", lock_ms=30_000) for _ in range(4)]
    tasks = [asyncio.create_task(replicas[i % 4].allowed("user-1", "acme/web")) for i in range(100)]
    # The 100th caller holds the fill lock; it may park the others before it reaches the source.
    await asyncio.wait_for(source.called.wait(), 10)
    await until(lambda: sum(r.waiting for r in replicas) == 99, "99 callers parked")
    assert source.calls == 1
    gate.set()
    assert await asyncio.gather(*tasks) == [True] * 100
    assert source.calls == 1


async def test_invalidation_deletes_the_key_and_records_the_reason(deps, database_url) -> None:
    raw = deps.valkey
    cache = RepoAccessCache(deps.valkey, CountingSource(deps.pool), env="test")
    await cache.allowed("user-1", "acme/web")
    deleted = await invalidate_repo_access(
        deps,
        "user-1",
        "acme/web",
        InvalidationReason.ACTIVE_RUN_REBOUND,
        origin=EventOrigin.RUN_START,
    )
    assert deleted == 1
    assert await raw.exists(KEY.format(user="user-1")) == 0
    assert (
        deps.metrics.value(
            MetricName.CACHE_INVALIDATION,
            repo="acme/web",
            user="user-1",
            provider="",
            reason="active_run_rebound",
        )
        == 1
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT origin, user_id, properties FROM preview_event "
            "WHERE event_name = 'preview.cache.invalidation'"
        ).fetchone()
    assert row is not None
    assert row[0] == "run_start" and row[1] == "user-1"
    assert row[2]["reason"] == "active_run_rebound" and row[2]["keysDeleted"] == 1


async def test_repo_invalidation_fans_out_through_the_index_set(deps) -> None:
    raw = deps.valkey
    cache = RepoAccessCache(deps.valkey, CountingSource(deps.pool), env="test")
    for user in ("user-1", "u2", "u3"):
        await cache.allowed(user, "acme/web")
    await cache.allowed("user-1", "acme/other")
    deleted = await invalidate_repo_access(
        deps, None, "acme/web", InvalidationReason.REPO_VISIBILITY_CHANGED
    )
    assert deleted == 3
    for user in ("user-1", "u2", "u3"):
        assert await raw.exists(KEY.format(user=user)) == 0
    assert await raw.exists("terragon:v1:preview:repo-access:test:user-1:acme/other") == 1


async def test_a_check_that_raced_an_invalidation_is_not_cached(deps) -> None:
    raw = deps.valkey
    gate = asyncio.Event()
    source = CountingSource(deps.pool, gate)
    cache = RepoAccessCache(deps.valkey, source, env="test")
    task = asyncio.create_task(cache.allowed("user-1", "acme/web"))
    await asyncio.wait_for(source.called.wait(), 10)
    await invalidate_repo_access(
        deps, "user-1", "acme/web", InvalidationReason.COLLABORATOR_CHANGED
    )
    gate.set()
    assert await task is True  # the caller gets its answer...
    assert await raw.exists(KEY.format(user="user-1")) == 0  # ...but it is not cached
    assert await cache.allowed("user-1", "acme/web") is True
    assert source.calls == 2
