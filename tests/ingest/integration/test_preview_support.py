"""Shared steps of the access/preview tests (no tests here): a run, a session, a cookie,
signed webhooks, and a small real HTTP upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import uuid
from typing import Any

from terragon_core import PREVIEW_COOKIE_NAME
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


async def exchange(client: Any, session_id: str, token: str) -> Any:
    return await client.post(f"/api/preview/session/{session_id}/exchange", json={"token": token})


async def session_cookie(client: Any, run_id: str, **kwargs: Any) -> tuple[str, str]:
    """Start a session and exchange its token: `(previewSessionId, Cookie header value)`."""
    started = await start_session(client, run_id, **kwargs)
    assert started.status_code == 200, started.text
    body = started.json()
    exchanged = await exchange(client, body["previewSessionId"], body["exchangeToken"])
    assert exchanged.status_code == 200, exchanged.text
    pair = exchanged.headers["set-cookie"].split(";", 1)[0]
    assert pair.startswith(f"{PREVIEW_COOKIE_NAME}=")
    return body["previewSessionId"], pair


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


class Upstream:
    """A tiny HTTP/1.1 server on 127.0.0.1, on a thread and event loop of its own (the app under
    `AsyncTestClient` blocks the test's loop while it serves). `/sse` sends one event, waits for
    `release`, sends a second and sets `finished`; any other path echoes target and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        self.finished = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((f"{method} {target}", headers))
        if target.startswith("/sse"):
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\nconnection: close\r\n\r\ndata: one\n\n"
            )
            await writer.drain()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
            writer.write(b"data: two\n\n")
            await writer.drain()
            self.finished.set()
        else:
            payload = json.dumps({"target": target, "body": body.decode()}).encode()
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-upstream: yes\r\n"
                b"set-cookie: upstream=1\r\nconnection: close\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        writer.close()
