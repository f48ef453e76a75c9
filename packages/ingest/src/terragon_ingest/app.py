"""The composition root: `create_app()` wires routes, dependencies, error mapping and lifespan.

The lifespan builds every domain's deps object completely (`AccessDeps`, `RunsDeps`,
`DaemonEventsDeps`, `PreviewDeps`, `HealthDeps`; the scheduler's `LifecycleDeps`), stores each on
`app.state` under the name its routes ask for, and Litestar DI hands them out (one `Provide` each).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import structlog
import valkey.asyncio as valkey_asyncio
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.router import Router
from litestar.types import ControllerRouterHandler

from terragon_ingest import health
from terragon_ingest.access.deps import AccessDeps
from terragon_ingest.access.routes import AccessInternalController, GithubWebhookController
from terragon_ingest.archive.deps import ArchiveDeps
from terragon_ingest.daemon_events.budgets import RunBudgets
from terragon_ingest.daemon_events.deps import DaemonEventsDeps
from terragon_ingest.daemon_events.group_commit import group_commits_for
from terragon_ingest.daemon_events.internal_routes import CorrelationController
from terragon_ingest.daemon_events.routes import DaemonEventFastPath, post_daemon_event
from terragon_ingest.db import connect, create_pool
from terragon_ingest.db.migrate import migrate
from terragon_ingest.errors import IngestError
from terragon_ingest.health import HealthDeps
from terragon_ingest.kit.deps import provide_from_state
from terragon_ingest.kit.http import (
    http_exception_handler,
    ingest_error_handler,
    internal_token_guard,
    unexpected_error_handler,
)
from terragon_ingest.kit.openapi import StrictStructSchemaPlugin
from terragon_ingest.lifecycle.deps import LifecycleDeps
from terragon_ingest.lifecycle.jobs import periodic_jobs
from terragon_ingest.lifecycle.scheduler import Scheduler
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.preview import host_routing
from terragon_ingest.preview.deps import open_preview_deps
from terragon_ingest.preview.openapi import schema_router
from terragon_ingest.preview.origin import OriginTemplate, check_api_outside_namespace
from terragon_ingest.preview.origin_routes import SessionOriginController
from terragon_ingest.preview.routes import LegacyPreviewController, PreviewSessionController
from terragon_ingest.runs.deps import RunsDeps
from terragon_ingest.runs.routes import RunsController
from terragon_ingest.runs.tokens import KnownTokens
from terragon_ingest.settings import Settings, get_settings
from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

# Routes behind `Authorization: Bearer $TERRAGON_INTERNAL_TOKEN` (the platform calls these).
INTERNAL_ROUTES: list[ControllerRouterHandler] = [
    RunsController,
    CorrelationController,
    AccessInternalController,
    PreviewSessionController,
]
# Routes with their own authentication (daemon token, preview cookie, webhook signature) or none.
# `SessionOriginController` is reached only on a preview session's origin (`host_routing`).
PUBLIC_ROUTES: list[ControllerRouterHandler] = [
    health.healthz,
    health.readyz,
    health.metrics,  # `health.metrics_route(settings)` in the app: its schema follows the token
    post_daemon_event,
    GithubWebhookController,
    LegacyPreviewController,
    SessionOriginController,
]


DEPS = ("access", "runs", "daemon_events", "preview", "health")
"""The deps objects routes ask for by name (`access: Injected[AccessDeps]`, ...)."""


def run_migrations(url: str) -> list[str]:
    """Bring the schema to head (blocking; call from a thread inside the event loop)."""
    with connect(url) as conn:  # the primary of a multi-host URL
        return migrate(conn)


def create_app(settings: Settings | None = None, *, run_migrate: bool = True) -> Litestar:
    settings = settings or get_settings()
    if not settings.db.URL or not settings.valkey.URL:
        raise IngestError(
            "DATABASE_URL and VALKEY_URL must be set for `serve`; "
            "`uv run terragon up` starts embedded servers and sets them for you"
        )
    db_url, valkey_url = settings.db.URL, settings.valkey.URL
    preview_origins = OriginTemplate.parse(settings.preview.ORIGIN)
    check_api_outside_namespace(preview_origins, settings.server.PUBLIC_URL)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if run_migrate:
            import anyio.to_thread

            await anyio.to_thread.run_sync(run_migrations, db_url)  # logs one summary line
        pool = create_pool(
            db_url,
            min_size=min(settings.db.POOL_MIN, settings.db.POOL_MAX),
            max_size=settings.db.POOL_MAX,
            timeout=settings.db.CONNECT_TIMEOUT,
            statement_timeout=settings.db.STATEMENT_TIMEOUT,
        )
        await pool.open(wait=True, timeout=30)
        client = valkey_asyncio.from_url(
            valkey_url,
            socket_timeout=settings.valkey.TIMEOUT,
            socket_connect_timeout=settings.valkey.TIMEOUT,
        )
        metrics = Metrics()
        exits = contextlib.AsyncExitStack()
        budgets = RunBudgets.from_settings(settings, client, metrics)
        envelopes_commit, quarantine_commit = group_commits_for(pool, settings, metrics)
        objects = QuarantineObjects.from_settings(settings)
        tokens = KnownTokens()  # one per process: runs forget a closed thread's, the route reads
        access = AccessDeps.build(settings, pool, client, metrics)
        daemon_events = DaemonEventsDeps(
            settings=settings,
            pool=pool,
            valkey=client,
            metrics=metrics,
            objects=objects,
            tokens=tokens,
            group_commit=envelopes_commit,
            quarantine_commit=quarantine_commit,
            budgets=budgets,
        )
        lifecycle = LifecycleDeps(
            pool=pool,
            daemon_events=daemon_events,
            archive=ArchiveDeps(settings=settings, pool=pool, metrics=metrics, objects=objects),
        )
        preview = await exits.enter_async_context(
            open_preview_deps(settings, pool, client, metrics, access)
        )
        app.state.metrics = metrics  # the HTTP protocol counts edge rejections (kit/http_protocol)
        # Under the names of DEPS (what routes ask for); `lifecycle` is the scheduler's alone.
        app.state.access = access
        app.state.runs = RunsDeps(
            settings=settings, pool=pool, metrics=metrics, tokens=tokens, access=access
        )
        app.state.daemon_events = daemon_events
        app.state.preview = preview
        app.state.health = HealthDeps(pool=pool, valkey=client, metrics=metrics)
        app.state.lifecycle = lifecycle
        budget_sync = asyncio.create_task(budgets.run(), name="run_budget_sync")
        scheduler = Scheduler(
            periodic_jobs() if settings.server.BACKGROUND_JOBS else [],
            interval_override=settings.server.JOB_INTERVAL_SECONDS,
        )
        scheduler.start(lifecycle)
        log.info("ingest_started", env=settings.server.ENV, jobs=[j.name for j in scheduler.jobs])
        # What start-up built lives as long as the process: move it out of the collector's reach,
        # so a full collection under load walks per-request garbage only (tail latency, issue 7).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await exits.aclose()  # the preview upstream client
            await scheduler.stop()
            budgets.stop()
            budget_sync.cancel()
            # Bounded: a stop never waits on the sync loop for long (see RunBudgets.stop).
            await asyncio.wait({budget_sync}, timeout=5)
            with contextlib.suppress(TimeoutError):  # a stop never hangs on a Valkey socket
                await asyncio.wait_for(client.aclose(), timeout=5)
            await pool.close()
            log.info("ingest_stopped")

    internal = Router(
        path="/",
        route_handlers=INTERNAL_ROUTES,
        guards=[internal_token_guard],
        security=[{"internalBearer": []}],
    )
    exception_handlers: dict[Any, Any] = {
        IngestError: ingest_error_handler,
        HTTPException: http_exception_handler,
        Exception: unexpected_error_handler,
    }
    config = AppConfig(
        route_handlers=[
            internal,
            *(health.metrics_route(settings) if r is health.metrics else r for r in PUBLIC_ROUTES),
        ],
        dependencies={name: provide_from_state(name) for name in DEPS},
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="terragon ingest",
            version="1.0.0",
            description="Run-correlation plane: daemon events, run context, quarantine, preview access.",
            path="/schema",
            openapi_router=schema_router("/schema", preview_origins),
            components=Components(
                security_schemes={
                    "internalBearer": SecurityScheme(type="http", scheme="bearer"),
                    "metricsBearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="`TERRAGON_METRICS_TOKEN` (the Prometheus scraper's)",
                    ),
                }
            ),
        ),
        request_max_body_size=settings.server.MAX_BODY_BYTES,
        plugins=[StrictStructSchemaPlugin()],  # before Litestar's own Struct plugin
    )
    app = Litestar.from_config(config)
    app.state.settings = settings
    app.asgi_handler = DaemonEventFastPath(app.asgi_handler, app)  # inside the Host routing
    host_routing.install(app, preview_origins)
    return app
