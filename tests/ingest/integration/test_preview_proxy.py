"""The preview proxy against a real upstream on 127.0.0.1: forwarding, header hygiene,
path denials, and a server-sent-events stream whose first event arrives before the upstream
has finished (no buffering), through the app under uvicorn."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import INTERNAL_TOKEN
from tests.ingest.integration.test_preview_support import (
    Upstream,
    session_cookie,
    start_run,
)
from tests.live_server import LiveServer, free_port


async def test_requests_are_forwarded_with_a_proxy_request_id(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        sid, cookie = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.post(
            f"/api/preview/proxy/{sid}/api/items?page=2",
            content=b"hello",
            headers={"cookie": f"{cookie}; theme=dark", "content-type": "text/plain"},
        )
    assert response.status_code == 201, response.text
    assert response.json() == {"target": "/api/items?page=2", "body": "hello"}
    proxy_req_id = response.headers["x-proxy-req-id"]
    assert len(proxy_req_id) == 32
    assert response.headers["x-upstream"] == "yes"
    assert "set-cookie" not in response.headers  # upstream cookies never land on our domain
    (line, headers) = upstream.requests[0]
    assert line == "POST /api/items?page=2"
    assert headers["x-proxy-req-id"] == proxy_req_id
    assert headers["cookie"] == "theme=dark"  # the preview cookie is not forwarded
    assert "authorization" in headers  # other headers are (the test client sends one)


async def test_traversal_and_absolute_urls_are_denied_before_any_upstream_call(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        sid, cookie = await session_cookie(client, run_id, origin=upstream.origin)
        for path in ("%2e%2e/%2e%2e/etc/passwd", "a/%2E%2E/b", "http:%2F%2Fevil.com%2F"):
            response = await client.get(
                f"/api/preview/proxy/{sid}/{path}", headers={"cookie": cookie}
            )
            assert response.status_code == 403, path
            assert response.json()["code"] == "proxy_path_denied", path
            assert response.headers["x-proxy-req-id"]
    assert upstream.requests == []


async def test_proxy_without_a_cookie_is_denied(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        sid, _cookie = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.get(f"/api/preview/proxy/{sid}/")
    assert (response.status_code, response.json()["code"]) == (401, "signature_mismatch")
    assert upstream.requests == []


async def test_unreachable_upstream_is_a_502(client) -> None:
    run_id = await start_run(client)
    sid, cookie = await session_cookie(client, run_id, origin="http://127.0.0.1:9")
    response = await client.get(f"/api/preview/proxy/{sid}/", headers={"cookie": cookie})
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"


async def test_server_sent_events_stream_before_the_upstream_finishes(settings) -> None:
    live = LiveServer(settings, free_port())
    await asyncio.to_thread(live.start)
    try:
        with Upstream() as upstream:
            headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
            async with httpx.AsyncClient(base_url=live.url, headers=headers) as http:
                run_id = await start_run(http)
                sid, cookie = await session_cookie(http, run_id, origin=upstream.origin)
                url = f"/api/preview/proxy/{sid}/sse"
                async with http.stream("GET", url, headers={"cookie": cookie}) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    assert response.headers["x-proxy-req-id"]
                    received = b""
                    chunks = response.aiter_raw()
                    while b"data: one\n\n" not in received:
                        received += await anext(chunks)
                    # The first event is here while the upstream is still holding the stream.
                    assert not upstream.finished.is_set()
                    upstream.release.set()
                    async for chunk in chunks:
                        received += chunk
        assert received == b"data: one\n\ndata: two\n\n"
        assert upstream.finished.is_set()
    finally:
        await asyncio.to_thread(live.stop)
