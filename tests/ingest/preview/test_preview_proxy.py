"""The preview proxy on a session origin against a real upstream on 127.0.0.1: forwarding,
header hygiene both ways (an echoing upstream proves what it received), service-worker refusal,
cross-origin refusal, path denials, streaming (server-sent events, large bodies both ways) and
the idle timeout, the last ones through the app under uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import pytest

from terragon_core import (
    PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS,
)
from terragon_ingest.settings import PreviewSettings
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.preview import (
    Upstream,
    on_origin,
    session_cookie,
    start_run,
)


async def test_requests_are_forwarded_with_a_proxy_request_id(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.post(
            "/api/items?page=2",
            content=b"hello",
            headers=preview.headers(**{"content-type": "text/plain"}),
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["target"], body["body"]) == ("/api/items?page=2", "hello")
    proxy_req_id = response.headers["x-proxy-req-id"]
    assert len(proxy_req_id) == 32
    assert response.headers["x-upstream"] == "yes"
    (line, headers) = upstream.requests[0]
    assert line == "POST /api/items?page=2"  # an /api/ path on a session origin is the upstream's
    assert headers["x-proxy-req-id"] == proxy_req_id
    assert headers["host"] == f"127.0.0.1:{upstream.port}"


async def test_credentials_and_hop_by_hop_headers_never_reach_the_upstream(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.get(
            "/echo",
            headers=preview.headers(
                cookie=f"{preview.cookie}; platform_session=parent-domain-secret; theme=dark",
                authorization="Bearer the-users-platform-token",
                connection="keep-alive, x-secret-hop",
                **{
                    "x-secret-hop": "1",
                    "keep-alive": "timeout=5",
                    "te": "trailers",
                    "upgrade": "websocket",
                    "proxy-authorization": "Basic c2VjcmV0",
                    "proxy-connection": "keep-alive",
                    "x-proxy-req-id": "spoofed",
                    "x-app-header": "kept",
                },
            ),
        )
    assert response.status_code == 201, response.text
    received = upstream.requests[0][1]
    for name in (
        "authorization",
        "cookie",
        "x-secret-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ):
        assert name not in received, (name, received)
    assert "parent-domain-secret" not in str(received)
    assert "terragon_preview" not in str(received)
    assert received["x-proxy-req-id"] == response.headers["x-proxy-req-id"] != "spoofed"
    assert received["x-app-header"] == "kept"


async def test_upstream_headers_that_reach_beyond_the_page_are_dropped(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.get("/echo", headers=preview.headers())
    assert response.status_code == 201
    for name in (
        "set-cookie",
        "service-worker-allowed",
        "clear-site-data",
        "access-control-allow-credentials",
        "keep-alive",
        "x-drop-me",  # named in the upstream's `Connection`
    ):
        assert name not in response.headers, (name, response.headers)
    assert response.headers["cross-origin-resource-policy"] == "same-origin"
    assert response.headers["x-upstream"] == "yes"


async def test_a_cookie_an_upstream_sets_never_rides_along_to_any_upstream(client) -> None:
    """The proxy's HTTP client is shared by every session: it must keep no cookie jar (found by
    the browser test: `upstream=1` from one response came back on the next request)."""
    with Upstream() as upstream:
        run_id = await start_run(client)
        a = await session_cookie(client, run_id, origin=upstream.origin)
        b = await session_cookie(client, run_id, origin=upstream.origin)
        first = await client.get("/sets-a-cookie", headers=a.headers())
        second = await client.get("/", headers=b.headers())
    assert (first.status_code, second.status_code) == (201, 201)
    assert [("cookie" in headers) for _line, headers in upstream.requests] == [False, False]


async def test_a_service_worker_script_request_is_refused(client, app) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.get(
            "/sw.js", headers=preview.headers(**{"service-worker": "script"})
        )
    assert response.status_code == 403
    assert response.json()["code"] == "proxy_path_denied"
    assert response.headers["x-proxy-req-id"]
    assert upstream.requests == []


async def test_a_cross_origin_request_with_the_cookie_never_reaches_the_upstream(client) -> None:
    """Sibling preview origins are the same site, so `SameSite=Lax` sends B's cookie with a
    fetch from A's page: Fetch Metadata tells, and B refuses it (reads, CSRF, script inclusion)."""
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        for mode, dest, method in (
            ("cors", "empty", "GET"),
            ("no-cors", "script", "GET"),
            ("navigate", "document", "POST"),
            ("navigate", "embed", "GET"),
        ):
            response = await client.request(
                method,
                "/data.json",
                headers=preview.headers(
                    **{
                        "sec-fetch-site": "same-site",
                        "sec-fetch-mode": mode,
                        "sec-fetch-dest": dest,
                    }
                ),
            )
            assert response.status_code == 403, (mode, dest, method)
            assert response.json()["code"] == "binding_mismatch"
        assert upstream.requests == []
        navigation = await client.get(
            "/",
            headers=preview.headers(
                **{
                    "sec-fetch-site": "cross-site",
                    "sec-fetch-mode": "navigate",
                    "sec-fetch-dest": "document",
                }
            ),
        )
        own_page = await client.get(
            "/x.js",
            headers=preview.headers(
                **{"sec-fetch-site": "same-origin", "sec-fetch-mode": "no-cors"}
            ),
        )
    assert (navigation.status_code, own_page.status_code) == (201, 201)


async def test_traversal_and_absolute_urls_are_denied_before_any_upstream_call(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        for path in (
            "/%2e%2e/%2e%2e/etc/passwd",
            "/a/%2E%2E/b",
            "/http:%2F%2Fevil.com%2F",
        ):
            response = await client.get(path, headers=preview.headers())
            assert response.status_code == 403, path
            assert response.json()["code"] == "proxy_path_denied", path
            assert response.headers["x-proxy-req-id"]
    assert upstream.requests == []


async def test_proxy_without_a_cookie_is_denied(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        response = await client.get("/", headers=on_origin(preview.url))
    assert (response.status_code, response.json()["code"]) == (401, "signature_mismatch")
    assert upstream.requests == []


async def test_a_cookie_of_session_a_on_session_b_proxy_is_401(client) -> None:
    with Upstream() as upstream_a, Upstream() as upstream_b:
        run_id = await start_run(client)
        a = await session_cookie(client, run_id, origin=upstream_a.origin)
        b = await session_cookie(client, run_id, origin=upstream_b.origin)
        response = await client.get("/", headers=on_origin(b.url, cookie=a.cookie))
    assert (response.status_code, response.json()["code"]) == (401, "signature_mismatch")
    assert upstream_a.requests == upstream_b.requests == []


async def test_head_and_options_are_forwarded(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        head = await client.head("/page", headers=preview.headers())
        options = await client.options("/page", headers=preview.headers())
    assert (head.status_code, options.status_code) == (201, 201)
    assert [line for line, _ in upstream.requests] == ["HEAD /page", "OPTIONS /page"]


async def test_unreachable_upstream_is_a_502(client) -> None:
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id, origin="http://127.0.0.1:9")
    response = await client.get("/", headers=preview.headers())
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    assert response.headers["x-proxy-req-id"]


def test_the_contract_timeouts_are_the_defaults() -> None:
    preview = PreviewSettings()
    assert preview.UPSTREAM_CONNECT_TIMEOUT == PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS == 10
    assert preview.UPSTREAM_IDLE_TIMEOUT == PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS == 60


@pytest.fixture(name="live")
async def fx_live(settings):
    """The app under uvicorn with a 1 s idle timeout (the 60 s default, shortened: the same code
    path, and the suite stays fast)."""
    fast = dataclasses.replace(
        settings, preview=dataclasses.replace(settings.preview, UPSTREAM_IDLE_TIMEOUT=1.0)
    )
    live = LiveServer(fast, free_port())
    await asyncio.to_thread(live.start)
    try:
        yield live
    finally:
        await asyncio.to_thread(live.stop)


def _http(live: LiveServer) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    return httpx.AsyncClient(base_url=live.url, headers=headers, timeout=30)


async def test_server_sent_events_stream_before_the_upstream_finishes(live) -> None:
    with Upstream() as upstream:
        async with _http(live) as http:
            run_id = await start_run(http)
            preview = await session_cookie(http, run_id, origin=upstream.origin)
            assert preview.url == f"http://{preview.sid}.preview.localhost:{live.port}"
            async with http.stream("GET", "/sse", headers=preview.headers()) as response:
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


async def test_large_bodies_stream_both_ways(live) -> None:
    size = 6 * 1024 * 1024  # above the 4 MiB daemon-event body cap, which is not the proxy's
    with Upstream() as upstream:
        async with _http(live) as http:
            run_id = await start_run(http)
            preview = await session_cookie(http, run_id, origin=upstream.origin)
            upload = await http.post("/upload", content=b"u" * size, headers=preview.headers())
            assert upload.status_code == 201, upload.text[:200]
            assert len(upload.json()["body"]) == size
            received = 0
            async with http.stream("GET", f"/big?n={size}", headers=preview.headers()) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    received += len(chunk)
    assert received == size


async def test_an_upstream_that_stalls_mid_body_is_cut_without_holding_a_worker(live) -> None:
    with Upstream() as upstream:
        async with _http(live) as http:
            run_id = await start_run(http)
            preview = await session_cookie(http, run_id, origin=upstream.origin)
            received: list[bytes] = []

            async def read_while_pinging() -> None:
                async with http.stream("GET", "/stall", headers=preview.headers()) as response:
                    assert response.status_code == 200
                    async for chunk in response.aiter_raw():
                        received.append(chunk)
                        # While one response stalls, the same worker answers others at once.
                        ping = time.monotonic()
                        assert (await http.get("/healthz")).status_code == 200
                        assert time.monotonic() - ping < 0.5

            started = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):  # cut, not a complete short body
                await read_while_pinging()
            elapsed = time.monotonic() - started
            assert b"".join(received) == b"first"
            assert 1.0 <= elapsed < 5.0, elapsed
            # The proxy closed its upstream connection too: nothing is left holding it.
            assert await asyncio.to_thread(upstream.closed.wait, 5)


async def test_an_upstream_that_never_answers_is_a_504(live) -> None:
    with Upstream() as upstream:
        async with _http(live) as http:
            run_id = await start_run(http)
            preview = await session_cookie(http, run_id, origin=upstream.origin)
            started = time.monotonic()
            response = await http.get("/stall-headers", headers=preview.headers())
            elapsed = time.monotonic() - started
            assert response.status_code == 504
            assert response.json()["code"] == "upstream_timeout"
            assert response.headers["x-proxy-req-id"]
            assert 1.0 <= elapsed < 5.0, elapsed
            assert await asyncio.to_thread(upstream.closed.wait, 5)


async def test_raw_request_targets_that_would_leave_the_origin_are_denied(live) -> None:
    """What a client sends byte for byte (a test client would normalise these first)."""
    with Upstream() as upstream:
        async with _http(live) as http:
            run_id = await start_run(http)
            preview = await session_cookie(http, run_id, origin=upstream.origin)
        host = preview.url.removeprefix("http://")
        answers = []
        for target in ("//evil.example/x", "/a/../../etc/passwd", "/%2e%2e/x", "/x/..%2F..%2Fy"):
            reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
            writer.write(
                f"GET {target} HTTP/1.1\r\nhost: {host}\r\ncookie: {preview.cookie}\r\n"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            answers.append((target, (await reader.read()).split(b"\r\n", 1)[0]))
            writer.close()
    assert [status for _, status in answers[:3]] == [b"HTTP/1.1 403 Forbidden"] * 3, answers
    # An encoded slash is not a separator: `..%2F..%2Fy` is one segment, forwarded as sent.
    assert answers[3][1] == b"HTTP/1.1 201 Created", answers
    assert upstream.paths() == ["/x/..%2F..%2Fy"]
