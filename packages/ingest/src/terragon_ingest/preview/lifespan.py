"""Process-wide preview resources, built in the app's lifespan after `Services`.

`services.access` holds the `RepoAccessCache` (its in-process single-flight futures must be
shared by every request); `services.preview` holds the signing keyring, the session-origin
template, the httpx client that streams to preview upstreams and the denial sampler.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING

import httpx
import structlog

from terragon_ingest.access import PostgresPermissionSource, RepoAccessCache
from terragon_ingest.preview.denials import DenialSampler
from terragon_ingest.preview.origin import OriginTemplate
from terragon_ingest.preview.tokens import PreviewKeyring

if TYPE_CHECKING:
    from litestar import Litestar

    from terragon_ingest.services import Services

log = structlog.get_logger()


def _cookie_jar_that_keeps_nothing() -> CookieJar:
    """The proxy's client is shared by every session: a cookie one upstream sets must not ride
    along to the next request to that host (another session's upstream, perhaps)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


NO_COOKIES = _cookie_jar_that_keeps_nothing()


@dataclass(frozen=True, slots=True)
class PreviewRuntime:
    keyring: PreviewKeyring
    http: httpx.AsyncClient
    origins: OriginTemplate
    denials: DenialSampler
    """Which anonymous denials get an event (one per session, reason and minute)."""


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
    connect, idle = (
        settings.preview.UPSTREAM_CONNECT_TIMEOUT,
        settings.preview.UPSTREAM_IDLE_TIMEOUT,
    )
    # `read`/`write` bound each socket operation, so a response (streaming too) ends after
    # `idle` seconds without a byte; `pool` bounds the wait for a connection slot.
    timeout = httpx.Timeout(connect=connect, read=idle, write=idle, pool=connect)
    # No connection cap shared by every session (one preview's slow upstream must not starve
    # the others; each connection is bounded by the timeouts instead). No redirects followed
    # (a 3xx goes back to the browser) and no env proxies: requests go to the session's
    # upstream origin and nowhere else.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
    http = httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        cookies=NO_COOKIES,
    )
    keyring = PreviewKeyring.from_settings(settings.server.SIGNING_SECRET, settings.preview)
    origins = OriginTemplate.parse(settings.preview.ORIGIN)
    services.preview = PreviewRuntime(
        keyring=keyring, http=http, origins=origins, denials=DenialSampler()
    )
    log.info(
        "preview_access_ready",
        kids=sorted(keyring.secrets),
        active_kid=keyring.active_kid,
        origin=origins.text(),
        allow_private_upstream=settings.preview.ALLOW_PRIVATE_UPSTREAM,
    )
    try:
        yield
    finally:
        await http.aclose()
