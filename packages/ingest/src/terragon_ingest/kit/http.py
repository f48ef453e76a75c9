"""HTTP plumbing shared by all routes: JSON responses, bearer auth (internal, metrics), error mapping."""

from __future__ import annotations

import contextlib
import hmac
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, InternalServerException, NotAuthorizedException

from terragon_core import TRACEPARENT_HEADER
from terragon_ingest.errors import IngestError, ServiceUnavailable, UpstreamFailed
from terragon_ingest.kit.net import is_loopback
from terragon_ingest.kit.openapi import ErrorBody
from terragon_ingest.kit.trace import trace_id_from
from terragon_ingest.settings import DEV_METRICS_TOKEN

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import (
        HTTPResponseBodyEvent,
        HTTPResponseStartEvent,
        Receive,
        Scope,
        Send,
    )

log = structlog.get_logger()


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(body),
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


class JsonAnswer:
    """A JSON answer as a bare ASGI app: the body encoded once, sent as the two ASGI messages.
    For a route on the ingest hot path only (`POST /api/daemon-event`): Litestar's `Response`
    resolves headers, cookies, media type and serializer on every request (~6 µs against
    ~0.6 µs here, of the ~0.2 ms of CPU an envelope costs). Everywhere else, `json_response`;
    a route returning this documents its 200 body in its `responses`."""

    __slots__ = ("_body", "_start")

    def __init__(self, body: Any, status_code: int, headers: dict[str, str] | None = None) -> None:
        encoded = _encode(body)
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(encoded)).encode()),
        ]
        for name, value in (headers or {}).items():
            raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        self._start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status_code,
            "headers": raw,
        }
        self._body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": encoded,
            "more_body": False,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start)
        await send(self._body)


_encode = msgspec.json.Encoder().encode


async def read_capped_body(request: Request[Any, Any, Any], cap: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `cap` bytes: a larger Content-Length is
    refused before any of the body is read, a longer body as soon as its bytes pass the cap.
    Raises `ClientException` for a malformed Content-Length."""
    if (request.content_length or 0) > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


async def receive_capped_body(
    receive: Receive, content_length: int | None, cap: int
) -> bytes | None:
    """`read_capped_body` straight from the ASGI `receive`, for a route without Litestar's own
    body limit (`request_max_body_size=None`) that has parsed its Content-Length already: the
    same answers, and a client gone mid-body is the error Litestar's `Request.stream` raises."""
    if (content_length or 0) > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    while event := await receive():
        if event["type"] == "http.request":
            body = event["body"]
            if body:
                size += len(body)
                if size > cap:
                    return None
                chunks.append(body)
            if not event.get("more_body", False):
                break
        if event["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def bearer_matches(header: str, expected: str) -> bool:
    """`header` is exactly `Bearer`, one space, `expected` (compared in constant time). An empty
    configured token opens to nobody: `serve` refuses to start on one, and an app built around
    one stays closed."""
    scheme, _sep, token = header.partition(" ")
    valid = scheme.lower() == "bearer" and token.strip() != "" and expected.strip() != ""
    # Compare even when the header is malformed, so its shape does not show in the timing.
    same = hmac.compare_digest(token.encode(), expected.encode())
    return valid and same


def internal_token_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """`Authorization: Bearer $TERRAGON_INTERNAL_TOKEN` on every `/api/internal/*` route."""
    expected: str = connection.app.state.settings.server.INTERNAL_TOKEN
    if not bearer_matches(connection.headers.get("authorization", ""), expected):
        raise NotAuthorizedException("missing or wrong internal bearer token")


def metrics_token_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """`/metrics` (its labels name tenants, CONTRACT §3): `Authorization: Bearer
    $TERRAGON_METRICS_TOKEN`, from the headers alone (a guard runs before any body is read).

    On the development default (`terragon up` with no token set; `serve` refuses to start on it)
    it answers a loopback peer without a token and nobody else: the default is public, so it is
    never a credential. The peer is the TCP peer (uvicorn runs without proxy headers)."""
    expected: str = connection.app.state.settings.server.METRICS_TOKEN
    if expected == DEV_METRICS_TOKEN:
        if _is_loopback_peer(connection.scope.get("client")):
            return
        raise NotAuthorizedException("/metrics answers only this machine under `terragon up`")
    if not bearer_matches(connection.headers.get("authorization", ""), expected):
        raise NotAuthorizedException("missing or wrong metrics bearer token")


def _is_loopback_peer(client: tuple[str, int] | None) -> bool:
    return client is not None and is_loopback(client[0])


def ingest_error_handler(request: Request[Any, Any, Any], exc: IngestError) -> Response[bytes]:
    """One mapping from domain errors to HTTP (registered in `create_app`)."""
    headers: dict[str, str] = {}
    body = ErrorBody(code=type(exc).__name__, error=exc.public_message)
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_seconds)
        # The cause (driver text) goes to the log under the trace id, never into the answer.
        trace_id = trace_id_from(request.headers.get(TRACEPARENT_HEADER))
        body.trace_id = trace_id
        log.error(
            "request_failed",
            path=request.url.path,
            trace_id=trace_id,
            error=str(exc),
            hint="a dependency is down; the client was told to retry",
        )
    elif isinstance(exc, UpstreamFailed):
        # This service is up: the upstream's failure (its text, e.g. a socket path) is logged
        # under the trace id; the answer carries the reason code and the minted run.
        trace_id = trace_id_from(request.headers.get(TRACEPARENT_HEADER))
        body.trace_id, body.reason, body.run_id = trace_id, exc.reason, exc.run_id
        log.warning(
            "upstream_failed",
            path=request.url.path,
            trace_id=trace_id,
            reason=exc.reason,
            run_id=exc.run_id,
            error=str(exc),
        )
    else:
        log.info("request_rejected", path=request.url.path, error=str(exc))  # the detail
    return json_response(body, exc.status_code, headers or None)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own 4xx/5xx (validation, auth, 404, 405) as `ErrorBody` (`detail` on validation)."""
    body = ErrorBody(code=type(exc).__name__, error=exc.detail, detail=exc.extra or None)
    return json_response(body, exc.status_code, exc.headers)


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Anything unhandled: log the traceback (5xx only) and answer a JSON 500."""
    trace_id = trace_id_from(request.headers.get(TRACEPARENT_HEADER))
    log.error(
        "request_crashed",
        path=request.url.path,
        method=request.method,
        trace_id=trace_id,
        exc_info=exc,
    )
    body = ErrorBody(code="InternalError", error="internal server error", trace_id=trace_id)
    return json_response(body, 500)
