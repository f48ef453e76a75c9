"""The serving protocol (kit/http_protocol.py) over a real socket: a whole response leaves in one
write, and a streamed one is never held back waiting for a write that has not come."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from terragon_ingest.kit import http_protocol
from terragon_ingest.kit.http_protocol import CoalescingHttpToolsProtocol

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
async def _server(monkeypatch) -> AsyncIterator[str]:
    monkeypatch.setattr(http_protocol, "_CoalescingTransport", _Recorded)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning"
    )
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
