"""Shared steps of the access/preview tests (no tests here): a run, a session on its own origin,
the exchange for a cookie, signed webhooks, and a small real HTTP upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from terragon_core import PREVIEW_COOKIE_NAME, PREVIEW_EXCHANGE_PATH
from tests.support import thread_body

WEBHOOK_SECRET = "dev-webhook-secret"


async def start_run(client: Any, thread_id: str = "thread-1", **thread: Any) -> str:
    response = await client.post("/api/internal/threads", json=thread_body(thread_id, **thread))
    assert response.status_code == 201, response.text
    response = await client.post(
        "/api/internal/runs/start",
        json={
            "threadId": thread_id,
            "threadChatId": "chat-1",
            "startRequestId": f"req-{uuid.uuid4().hex[:8]}",
            "triggerSource": "ui",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["runId"])


async def start_session(
    client: Any,
    run_id: str,
    *,
    user_id: str = "user-1",
    origin: str = "http://127.0.0.1:9",
    thread_id: str = "thread-1",
) -> Any:
    return await client.post(
        "/api/internal/preview/session/start",
        json={
            "threadId": thread_id,
            "threadChatId": "chat-1",
            "runId": run_id,
            "userId": user_id,
            "upstreamOrigin": origin,
        },
    )


def on_origin(preview_url: str, **headers: str) -> dict[str, str]:
    """Headers that put a request on the session origin: the test client (and Python's
    resolver, which does not know `*.localhost`) connects to the API's address, the `Host`
    names the session, exactly as a browser's request to `previewUrl` would."""
    return {"host": urlsplit(preview_url).netloc, **headers}


async def exchange(client: Any, preview_url: str, token: str, **headers: str) -> Any:
    response = await client.post(
        PREVIEW_EXCHANGE_PATH, json={"token": token}, headers=on_origin(preview_url, **headers)
    )
    # The client's jar files the cookie under the address it connected to, not the Host, and
    # would send it everywhere: tests send the `Cookie` header they mean explicitly.
    client.cookies.clear()
    return response


@dataclass(frozen=True, slots=True)
class Preview:
    """A session after the exchange: its id, origin, and the `Cookie` header value."""

    sid: str
    url: str
    cookie: str

    def headers(self, **extra: str) -> dict[str, str]:
        return on_origin(self.url, **{"cookie": self.cookie, **extra})


async def session_cookie(client: Any, run_id: str, **kwargs: Any) -> Preview:
    """Start a session and exchange its token for the cookie."""
    started = await start_session(client, run_id, **kwargs)
    assert started.status_code == 200, started.text
    body = started.json()
    exchanged = await exchange(client, body["previewUrl"], body["exchangeToken"])
    assert exchanged.status_code == 200, exchanged.text
    pair = exchanged.headers["set-cookie"].split(";", 1)[0]
    assert pair.startswith(f"{PREVIEW_COOKIE_NAME}=")
    return Preview(body["previewSessionId"], body["previewUrl"], pair)


async def post_webhook(
    client: Any, event: str, payload: dict[str, Any], *, delivery: str | None = None
) -> Any:
    body = json.dumps(payload).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return await client.post(
        "/api/webhooks/github",
        content=body,
        headers={
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": delivery or uuid.uuid4().hex,
            "x-hub-signature-256": f"sha256={signature}",
        },
    )


HOSTILE_RESPONSE_HEADERS = (
    b"set-cookie: upstream=1; Path=/\r\n"
    b"service-worker-allowed: /\r\n"
    b'clear-site-data: "cookies", "storage"\r\n'
    b"access-control-allow-credentials: true\r\n"
    b"keep-alive: timeout=5\r\n"
    b"x-drop-me: 1\r\nconnection: close, x-drop-me\r\n"
)
"""What an upstream might send that must never reach the browser."""


class Upstream:
    """A tiny HTTP/1.1 server on 127.0.0.1, on a thread and event loop of its own (the app under
    `AsyncTestClient` blocks the test's loop while it serves). It records every request line
    and its headers. Paths:

    - `/sse`: one event, waits for `release`, a second event, sets `finished`;
    - `/stall`: headers and `first`, then nothing until the client goes away (`closed` is set);
    - `/stall-headers`: reads the request and never answers;
    - `/big?n=N`: N bytes in 64 KiB chunks;
    - `pages[path]`: `(content type, body, extra header lines)`;
    - anything else: 201 echoing target, body and headers, with `HOSTILE_RESPONSE_HEADERS`.
    """

    def __init__(self, pages: dict[str, tuple[str, bytes, bytes]] | None = None) -> None:
        self.pages = pages or {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self.finished = threading.Event()
        self.closed = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [line.split(" ")[1] for line, _ in self.requests]

    def __enter__(self) -> Upstream:
        self._thread.start()
        assert self._ready.wait(10), "upstream did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        pairs = [h.split(":", 1) for h in head[1:] if h]
        headers = {k.lower(): v.strip() for k, v in pairs}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await reader.readline()).strip(), 16):
                body += await reader.readexactly(size)
                await reader.readline()
            await reader.readline()
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((f"{method} {target}", headers))
        path = target.split("?", 1)[0]
        if path == "/sse":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\nconnection: close\r\n\r\ndata: one\n\n"
            )
            await writer.drain()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
            writer.write(b"data: two\n\n")
            await writer.drain()
            self.finished.set()
        elif path == "/stall":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n"
                b"connection: close\r\n\r\nfirst"
            )
            await writer.drain()
            await reader.read()  # returns when the proxy closes its side
            self.closed.set()
        elif path == "/stall-headers":
            await reader.read()
            self.closed.set()
        elif path == "/big":
            n = int(target.split("n=", 1)[1])
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                + f"content-length: {n}\r\nconnection: close\r\n\r\n".encode()
            )
            sent = 0
            while sent < n:
                chunk = min(65536, n - sent)
                writer.write(b"x" * chunk)
                await writer.drain()
                sent += chunk
        elif path in self.pages:
            content_type, page, extra = self.pages[path]
            writer.write(
                b"HTTP/1.1 200 OK\r\n"
                + f"content-type: {content_type}\r\ncontent-length: {len(page)}\r\n".encode()
                + extra
                + b"connection: close\r\n\r\n"
                + page
            )
            await writer.drain()
        else:
            payload = json.dumps(
                {"target": target, "body": body.decode(), "headers": headers}
            ).encode()
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-upstream: yes\r\n"
                + HOSTILE_RESPONSE_HEADERS
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
