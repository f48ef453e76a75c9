"""Valkey really stopped: on the session's origin, exchange (GET and POST), proxy and
subscription-token answer 503 `{code: "cache_unavailable", retryAfterMs, backoffHint}` with
`Retry-After`, record the denial, and let nothing through (no cookie, no token, no upstream
request)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import psycopg
from litestar.testing import AsyncTestClient

from terragon_core import PREVIEW_EXCHANGE_PATH, PREVIEW_SUBSCRIPTION_TOKEN_PATH, MetricName
from terragon_ingest.app import create_app
from terragon_ingest.embedded import EmbeddedValkey
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.preview import (
    Upstream,
    exchange,
    on_origin,
    session_cookie,
    start_run,
    start_session,
)
from tests.fixtures.settings import settings_for


def _assert_cache_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body == {
        "code": "cache_unavailable",
        "error": body["error"],
        "retryAfterMs": 2000,
        "backoffHint": "exponential",
    }
    assert response.headers["retry-after"] == "2"


async def test_every_access_path_fails_closed_when_valkey_is_down(database_url) -> None:
    directory = Path(tempfile.mkdtemp(prefix="terragon-valkey-down-"))
    valkey_server = EmbeddedValkey(directory)
    valkey_url = await asyncio.to_thread(valkey_server.start)
    try:
        settings = await asyncio.to_thread(settings_for, database_url, valkey_url, directory)
        app = await asyncio.to_thread(create_app, settings)
        with Upstream() as upstream:
            async with AsyncTestClient(app=app) as client:
                client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
                run_id = await start_run(client)
                preview = await session_cookie(client, run_id, origin=upstream.origin)
                unused = (await start_session(client, run_id, origin=upstream.origin)).json()
                spare = (await start_session(client, run_id, origin=upstream.origin)).json()
                proxied = await client.get("/", headers=preview.headers())
                assert proxied.status_code == 201  # allowed while the cache is up
                upstream.requests.clear()

                await asyncio.to_thread(valkey_server.stop)

                swapped = await exchange(client, unused["previewUrl"], unused["exchangeToken"])
                _assert_cache_unavailable(swapped)
                assert "set-cookie" not in swapped.headers
                redirected = await client.get(
                    PREVIEW_EXCHANGE_PATH,
                    params={"token": spare["exchangeToken"]},
                    headers=on_origin(spare["previewUrl"]),
                    follow_redirects=False,
                )
                _assert_cache_unavailable(redirected)
                assert "set-cookie" not in redirected.headers
                assert "location" not in redirected.headers
                proxied = await client.get("/", headers=preview.headers())
                _assert_cache_unavailable(proxied)
                assert proxied.headers["x-proxy-req-id"]
                minted = await client.post(
                    PREVIEW_SUBSCRIPTION_TOKEN_PATH, headers=preview.headers()
                )
                _assert_cache_unavailable(minted)
                assert "token" not in minted.json()
                metrics = app.state.preview.metrics
                denied = metrics.value(
                    MetricName.ACCESS_DENIED,
                    repo="acme/web",
                    user="user-1",
                    provider="manual",
                    reason="cache_unavailable",
                )
        assert upstream.requests == []  # nothing was let through
        assert denied == 4
        with psycopg.connect(database_url) as conn:
            origins = sorted(
                r[0]
                for r in conn.execute(
                    "SELECT origin FROM preview_event WHERE event_name = 'v1.preview.access.denied'"
                    " AND properties->>'reason' = 'cache_unavailable'"
                )
            )
        assert origins == [
            "preview_exchange",
            "preview_exchange",
            "preview_proxy",
            "preview_subscription",
        ]
    finally:
        await asyncio.to_thread(valkey_server.stop)
        shutil.rmtree(directory, ignore_errors=True)
