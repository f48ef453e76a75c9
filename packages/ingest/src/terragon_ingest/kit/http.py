"""HTTP plumbing shared by all routes: JSON responses, internal bearer auth, error mapping."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException

from terragon_core import TRACEPARENT_HEADER
from terragon_ingest.errors import IngestError, ServiceUnavailable
from terragon_ingest.kit.openapi import ErrorBody
from terragon_ingest.kit.trace import trace_id_from

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

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


def internal_token_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """`Authorization: Bearer $TERRAGON_INTERNAL_TOKEN` on every `/api/internal/*` route.

    Exactly `Bearer`, one space, the token (compared in constant time). An empty configured token
    opens to nobody: `serve` refuses to start on one, and an app built around one stays closed.
    """
    expected: str = connection.app.state.settings.server.INTERNAL_TOKEN
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    valid = scheme.lower() == "bearer" and token.strip() != "" and expected.strip() != ""
    # Compare even when the header is malformed, so its shape does not show in the timing.
    same = hmac.compare_digest(token.encode(), expected.encode())
    if not (valid and same):
        raise NotAuthorizedException("missing or wrong internal bearer token")


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
