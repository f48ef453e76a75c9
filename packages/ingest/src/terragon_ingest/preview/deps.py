"""What the preview domain uses, built once at start-up (`open_preview_deps`, in the app's
lifespan): the pool, Valkey (token spends), metrics, the repo-access cache, the signing keyring,
the session-origin template, the httpx client that streams to preview upstreams (closed on exit)
and the denial sampler.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import structlog
from valkey.asyncio import Valkey

from terragon_ingest.access import AccessDeps
from terragon_ingest.db import Pool
from terragon_ingest.preview.denials import DenialSampler
from terragon_ingest.preview.origin import OriginTemplate
from terragon_ingest.preview.tokens import PreviewKeyring
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()


def _cookie_jar_that_keeps_nothing() -> CookieJar:
    """The proxy's client is shared by every session: a cookie one upstream sets must not ride
    along to the next request to that host (another session's upstream, perhaps)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


NO_COOKIES = _cookie_jar_that_keeps_nothing()


@dataclass(frozen=True, slots=True)
class PreviewDeps:
    settings: Settings
    pool: Pool
    valkey: Valkey
    metrics: Metrics
    access: AccessDeps
    """The repo-access cache a request is allowed by, and its one invalidation path."""
    keyring: PreviewKeyring
    http: httpx.AsyncClient
    origins: OriginTemplate
    denials: DenialSampler
    """Which anonymous denials get an event (one per session, reason and minute)."""


@contextlib.asynccontextmanager
async def open_preview_deps(
    settings: Settings, pool: Pool, valkey: Valkey, metrics: Metrics, access: AccessDeps
) -> AsyncIterator[PreviewDeps]:
    """Build the preview domain's deps; close its upstream client on exit."""
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
    deps = PreviewDeps(
        settings=settings,
        pool=pool,
        valkey=valkey,
        metrics=metrics,
        access=access,
        keyring=keyring,
        http=http,
        origins=origins,
        denials=DenialSampler(),
    )
    log.info(
        "preview_access_ready",
        kids=sorted(keyring.secrets),
        active_kid=keyring.active_kid,
        origin=origins.text(),
        allow_private_upstream=settings.preview.ALLOW_PRIVATE_UPSTREAM,
    )
    try:
        yield deps
    finally:
        await http.aclose()
