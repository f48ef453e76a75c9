"""The serving protocol (kit/http_protocol.py) over a real socket: a whole response leaves in one
write, a streamed one is never held back waiting for a write that has not come, and a deadline
that moves earlier (headers after a longer idle wait) is kept."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from terragon_ingest.kit import http_protocol
from terragon_ingest.kit.http_protocol import EdgeLimits, edge_protocol

WRITES: list[bytes] = []


class _Recorded(http_protocol._CoalescingTransport):
    """Records what reaches the socket's transport (the sends), then sends it."""

    def flush(self) -> None:
        if self._held:
            WRITES.append(b"".join(self._held))
        super().flush()


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/whole":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})
        return
    # /stream: the second chunk is sent only once the client has read the first
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await STREAM["first_read"].wait()
    await send({"type": "http.response.body", "body": b"second", "more_body": False})


STREAM: dict[str, asyncio.Event] = {}


@contextlib.asynccontextmanager
async def _server(monkeypatch, limits: EdgeLimits | None = None) -> AsyncIterator[str]:
    monkeypatch.setattr(http_protocol, "_CoalescingTransport", _Recorded)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    protocol = edge_protocol(limits or EdgeLimits())
    config = uvicorn.Config(_app, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    sock.listen(8)  # a client connecting before the server runs waits in the backlog
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def test_a_whole_response_leaves_in_one_write(monkeypatch) -> None:
    WRITES.clear()
    async with _server(monkeypatch) as url, httpx.AsyncClient() as client:
        response = await client.get(url + "/whole")
    assert (response.status_code, response.content) == (200, b"ok")
    assert (
        len(WRITES) == 1 and WRITES[0].startswith(b"HTTP/1.1 200 OK") and WRITES[0].endswith(b"ok")
    )


async def test_a_streamed_chunk_is_not_held_for_the_next_one(monkeypatch) -> None:
    STREAM["first_read"] = asyncio.Event()
    async with (
        _server(monkeypatch) as url,
        httpx.AsyncClient() as client,
        client.stream("GET", url + "/stream") as response,
    ):
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), timeout=30)  # held: this would time out
        STREAM["first_read"].set()
        rest = b"".join([c async for c in chunks])
    assert (first, rest) == (b"first", b"second")


async def test_headers_keep_their_deadline_under_a_longer_idle_one(monkeypatch) -> None:
    """Idle 30 s, headers 0.5 s: the connection's timer, due for the idle deadline, is brought
    forward when the first byte starts the header clock."""
    limits = EdgeLimits(header_timeout=0.5, body_timeout=30, keep_alive_timeout=30)
    async with _server(monkeypatch, limits) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /whole HTTP/1.1\r\nHost: x\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # to the close
        took = time.monotonic() - started
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"header_timeout" in answer
    assert took < 5
