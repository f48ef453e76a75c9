"""Liveness, readiness and the Prometheus exposition (behind its own bearer token)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
from litestar import MediaType, Response, get
from litestar.handlers import HTTPRouteHandler
from valkey.asyncio import Valkey

from terragon_ingest.db import Pool
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.http import metrics_token_guard
from terragon_ingest.kit.openapi import error_responses
from terragon_ingest.settings import DEV_METRICS_TOKEN, Settings
from terragon_ingest.telemetry import CONTENT_TYPE_LATEST, Metrics


@dataclass(frozen=True, slots=True)
class HealthDeps:
    """What readiness and the exposition read: the two servers and the process's counters."""

    pool: Pool
    valkey: Valkey
    metrics: Metrics


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


@get("/healthz", tags=["ops"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@get("/readyz", tags=["ops"])
async def readyz(health: Injected[HealthDeps]) -> Response[Health]:
    """PostgreSQL and Valkey both answer; 503 (with which one failed) otherwise."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with health.pool.connection() as conn:
                await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {type(exc).__name__}: {exc}"
    try:
        async with asyncio.timeout(2):
            await health.valkey.ping()
        checks["valkey"] = "ok"
    except Exception as exc:
        checks["valkey"] = f"error: {type(exc).__name__}: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return Response(
        Health(status="ok" if ok else "unavailable", checks=checks),
        status_code=200 if ok else 503,
    )


async def _metrics(health: Injected[HealthDeps]) -> Response[bytes]:
    """Prometheus text exposition: `preview_*_total` counters with repo/user/provider/reason.
    Behind `TERRAGON_METRICS_TOKEN` (the labels name tenants)."""
    return Response(health.metrics.exposition(), media_type=CONTENT_TYPE_LATEST, status_code=200)


def _metrics_route(security: list[dict[str, list[str]]]) -> HTTPRouteHandler:
    return get(
        "/metrics",
        tags=["ops"],
        media_type=MediaType.TEXT,
        guards=[metrics_token_guard],
        security=security,
        responses=error_responses(
            401,
            s401="Missing or wrong `Authorization: Bearer $TERRAGON_METRICS_TOKEN` (under "
            "`terragon up` with no token set: a peer other than the loopback address).",
        ),
        name="metrics",
    )(_metrics)


metrics = _metrics_route([{"metricsBearer": []}])
metrics_on_loopback = _metrics_route([{"metricsBearer": []}, {}])
"""`/metrics` on the development token (`terragon up` with none set): this machine needs no
token, and the schema says so (the bearer is optional), so a schema check run against `up`
agrees with what it answers."""


def metrics_route(settings: Settings) -> HTTPRouteHandler:
    return metrics_on_loopback if settings.server.METRICS_TOKEN == DEV_METRICS_TOKEN else metrics
