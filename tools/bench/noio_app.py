"""The no-I/O ceiling: the same Litestar + uvicorn configuration as `terragon serve`, answering
the same bodies with no database or Valkey work. It reads the raw body and decodes it strictly
(work any implementation of the route must do), then answers like the service would.

    python -m uvicorn tools.bench.noio_app:app --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post

from terragon_core import decode_envelope

_APPLIED = msgspec.json.encode({"status": "applied"})


@post("/api/daemon-event", status_code=200)
async def daemon_event(request: Request[Any, Any, Any]) -> Response[bytes]:
    envelope = decode_envelope(await request.body())
    status = 200 if envelope.run_id else 202
    return Response(_APPLIED, status_code=status, media_type=MediaType.JSON)


class _Thread(msgspec.Struct, rename="camel"):
    thread_id: str
    user_id: str
    repo_full_name: str
    sandbox_provider: str
    codesandbox_id: str


@post("/api/internal/threads", status_code=201)
async def threads(request: Request[Any, Any, Any]) -> Response[bytes]:
    thread = msgspec.json.decode(await request.body(), type=_Thread, strict=True)
    return Response(msgspec.json.encode(thread), status_code=201, media_type=MediaType.JSON)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[daemon_event, threads, healthz], openapi_config=None)
