"""Process-wide preview resources, built in the app's lifespan after `Services`.

`services.access` holds the `RepoAccessCache` (its in-process single-flight futures must be
shared by every request); `services.preview` holds the signing keyring and the httpx client that
streams to preview upstreams.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import structlog

from terragon_ingest.access import PostgresPermissionSource, RepoAccessCache
from terragon_ingest.preview.tokens import PreviewKeyring

if TYPE_CHECKING:
    from litestar import Litestar

    from terragon_ingest.services import Services

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class PreviewRuntime:
    keyring: PreviewKeyring
    http: httpx.AsyncClient


def access_cache(services: Services) -> RepoAccessCache:
    assert services.access is not None, "preview_lifespan builds it at start-up"
    return services.access


def preview_runtime(services: Services) -> PreviewRuntime:
    assert services.preview is not None, "preview_lifespan builds it at start-up"
    return services.preview


@contextlib.asynccontextmanager
async def preview_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Add the access cache and preview runtime to `app.state.services`; close them on exit."""
    services: Services = app.state.services
    settings = services.settings
    services.access = RepoAccessCache(
        services.valkey,
        PostgresPermissionSource(services.pool),
        env=settings.server.ENV,
        lock_ms=settings.preview.FILL_LOCK_MS,
    )
    timeout = httpx.Timeout(None, connect=settings.preview.UPSTREAM_CONNECT_TIMEOUT)
    # No redirects followed (a 3xx goes back to the browser) and no env proxies: requests go
    # to the session's upstream origin and nowhere else.
    http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
    keyring = PreviewKeyring.from_settings(settings.server.SIGNING_SECRET, settings.preview)
    services.preview = PreviewRuntime(keyring=keyring, http=http)
    log.info("preview_access_ready", kids=sorted(keyring.secrets), active_kid=keyring.active_kid)
    try:
        yield
    finally:
        await http.aclose()
