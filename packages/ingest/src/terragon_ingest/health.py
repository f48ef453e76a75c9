"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import MediaType, Response, get

from terragon_ingest.services import ServicesDep
from terragon_ingest.telemetry import CONTENT_TYPE_LATEST


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", tags=["ops"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@get("/readyz", tags=["ops"])
async def readyz(services: ServicesDep) -> Response[Health]:
    """PostgreSQL and Valkey both answer; 503 (with which one failed) otherwise."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with services.pool.connection() as conn:
                await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {type(exc).__name__}: {exc}"
    try:
        async with asyncio.timeout(2):
            await services.valkey.ping()
        checks["valkey"] = "ok"
    except Exception as exc:
        checks["valkey"] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return Response(
        Health(status="ok" if ok else "unavailable", checks=checks),
        status_code=200 if ok else 503,
    )


@get("/metrics", tags=["ops"], media_type=MediaType.TEXT)
async def metrics(services: ServicesDep) -> Response[bytes]:
    """Prometheus text exposition: `preview_*_total` counters with repo/user/provider/reason."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST, status_code=200)
