"""Access check on a cache hit (`RepoAccessCache.allowed`) vs a raw Valkey GET of the same key,
from the same process, the same client and the same event loop. Alternating blocks cancel out
the machine's noise; the ratio is median hit latency ÷ median GET latency. The subject is the
cache itself; the preview routes that call it on a session origin are measured over HTTP in
`preview.py`."""

from __future__ import annotations

import asyncio
import statistics
import time

from tools.bench.context import Context
from tools.bench.report import BenchResult, judge

TARGET = "≤ 1.5 x raw Valkey GET"


def bench_access(ctx: Context) -> list[BenchResult]:
    try:
        from terragon_ingest.access import PermissionSource, RepoAccessCache
    except ImportError as exc:
        reason = f"terragon_ingest.access has not landed ({exc})"
        return [BenchResult.skip("access check (cache hit)", "µs", reason, TARGET)]
    return [asyncio.run(_measure(ctx, RepoAccessCache, PermissionSource))]


async def _measure(ctx: Context, cache_cls: type, source_cls: type) -> BenchResult:
    import valkey.asyncio as valkey_asyncio

    from terragon_core import repo_access_key

    class Allow(source_cls):
        checks = 0

        async def check(self, user_id: str, repo_full_name: str) -> bool:
            Allow.checks += 1
            return True

    client = valkey_asyncio.from_url(ctx.stack.valkey_url)
    try:
        env, user, repo = "bench", "bench-user", "bench/repo"
        cache = cache_cls(client, Allow(), env=env)
        assert await cache.allowed(user, repo) is True  # miss → check → populate
        key = repo_access_key(env, user, repo)
        block = 200
        rounds = 10 if ctx.options.quick else 40
        hit: list[float] = []
        raw: list[float] = []
        deadline = time.monotonic() + ctx.options.seconds
        for i in range(rounds * 4):
            ctx.status(f"access: block {i + 1}")
            t0 = time.perf_counter()
            for _ in range(block):
                await cache.allowed(user, repo)
            t1 = time.perf_counter()
            for _ in range(block):
                await client.get(key)
            t2 = time.perf_counter()
            hit.append((t1 - t0) / block)
            raw.append((t2 - t1) / block)
            if i + 1 >= rounds and time.monotonic() > deadline:
                break
        # A cache hit must not have run the permission check again.
        checks = Allow.checks
    finally:
        await client.aclose()
    hit_us = statistics.median(hit) * 1e6
    raw_us = statistics.median(raw) * 1e6
    ratio = hit_us / raw_us if raw_us else None
    return BenchResult(
        name="access check (cache hit)",
        metric="µs/check",
        value=hit_us,
        ceiling_name="raw Valkey GET",
        ceiling=raw_us,
        ratio=ratio,
        target=TARGET,
        met=judge(ratio, "<=", 1.5),
        details={
            "blocks": len(hit),
            "callsPerBlock": block,
            "permissionChecks": checks,
            "note": f"median of {len(hit)} blocks of {block}; permission checks run: {checks}",
        },
    )
