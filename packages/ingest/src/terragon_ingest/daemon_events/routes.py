"""`POST /api/daemon-event` (CONTRACT §4): daemons post envelopes here with `X-Daemon-Token`.

The route checks the token from the headers (`authenticate`) before it reads anything of the
body: a missing or unknown token is 401 at the cost of its headers (CONTRACT §3). Then it reads the
raw body itself under `TERRAGON_MAX_BODY_BYTES` (413 `too_large`; Litestar's own limit is lifted
for this route so it cannot pre-empt the body) and hands it to the decision.
Every answer is JSON with `status`; a database or object-store outage is 503 `unavailable` with
`Retry-After`, and nothing was written.

`DaemonEventFastPath` (installed by `create_app` around Litestar's router) hands a `POST` to this
exact path straight to the handler: the route has no guard, dependency, hook, DTO or cache, so
Litestar's per-request routing and signature layers would only cost CPU. The route stays
registered (the schema, and every other method or spelling of the path, go through Litestar), and
an exception goes to Litestar's own exception handling, as it would there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Litestar, Request, post
from litestar._asgi.utils import is_valid_host
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware._internal.exceptions import ExceptionHandlerMiddleware
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from terragon_core import DAEMON_TOKEN_HEADER, TRACEPARENT_HEADER, EnvelopeStatus, MetricName
from terragon_ingest.daemon_events.deps import DaemonEventsDeps
from terragon_ingest.daemon_events.schemas import EnvelopeAck
from terragon_ingest.daemon_events.service import (
    Reply,
    authenticate,
    handle_delivery,
    refuse_over_budget,
)
from terragon_ingest.errors import ServiceUnavailable
from terragon_ingest.kit.http import JsonAnswer, receive_capped_body
from terragon_ingest.telemetry import trace_id_from

log = structlog.get_logger()


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=EnvelopeAck, description=description)


RESPONSES: dict[int, ResponseSpec] = {
    200: _spec("`applied` (with `legacyMode: true` for a legacy envelope under strict=false)"),
    202: _spec("`duplicate`, `stale_seq`, or `quarantined` with `reason`: acked, nothing applied"),
    400: _spec("`invalid` with `errors`: the body is not JSON or has wrong types"),
    401: _spec(
        "`unauthorized`: missing or unknown X-Daemon-Token; with `code` `expired` (an hour after "
        "its run ended) or `revoked` (its thread was closed)"
    ),
    403: _spec("`forbidden`: the token is bound to another thread"),
    413: _spec("`too_large`: the body is over TERRAGON_MAX_BODY_BYTES"),
    429: _spec("`rate_limited`: the run is over its per-minute budget; retry after `Retry-After`"),
    503: _spec("`unavailable`: database or object store down; retry after `Retry-After`"),
}


PATH = "/api/daemon-event"


@post(
    PATH,
    status_code=200,
    tags=["daemon"],
    request_max_body_size=None,  # our own cap below answers 413 with a `status` body
    responses=RESPONSES,
)
async def post_daemon_event(request: Request[Any, Any, Any]) -> ASGIApp:
    """Deliver one envelope: applied exactly once, acked as duplicate / stale, or quarantined."""
    # The hot path reads its deps off the app, not through `Injected[DaemonEventsDeps]`:
    # Litestar's dependency resolution builds a `State` and validates kwargs on every request.
    return await _answer(request.app.state.daemon_events, request.scope, request.receive)


async def _answer(deps: DaemonEventsDeps, scope: Scope, receive: Receive) -> JsonAnswer:
    """The route, from the ASGI scope and receive (what `DaemonEventFastPath` has): the three
    headers it reads are found in the raw list, not through a `Headers` multidict."""
    started = time.perf_counter()
    token, traceparent, content_length = _read_headers(scope["headers"])
    trace_id = trace_id_from(traceparent)
    headers: dict[str, str] = {}
    try:
        # The token from the headers first: a stranger's body is never read (CONTRACT §3).
        sender = await authenticate(deps, token)
        if isinstance(sender, Reply):
            reply = sender
        elif (
            early := refuse_over_budget(deps.budgets, sender, (length := _length(content_length)))
        ) is not None:
            reply = early  # 429 before the body: the run is known to be spent
            # Close rather than receive and discard the unread body on this connection (the
            # daemon opens a connection per attempt anyway).
            headers["Connection"] = "close"
        elif (
            body := await receive_capped_body(receive, length, deps.settings.server.MAX_BODY_BYTES)
        ) is None:
            reply = Reply(
                413, EnvelopeAck(EnvelopeStatus.TOO_LARGE, error="body over the size cap")
            )
        else:
            reply = await handle_delivery(deps, body, sender, trace_id)
    except ClientException as exc:  # a malformed Content-Length header
        reply = Reply(400, EnvelopeAck(EnvelopeStatus.INVALID, errors=[str(exc.detail)]))
    except ServiceUnavailable as exc:
        # The cause stays in the log under the trace id; the daemon gets a fixed message.
        log.error(
            "envelope_unavailable",
            trace_id=trace_id,
            error=str(exc),
            hint="a dependency is down; the daemon retries the same envelope after Retry-After",
        )
        headers["Retry-After"] = str(exc.retry_after_seconds)
        ack = EnvelopeAck(EnvelopeStatus.UNAVAILABLE, error=exc.public_message, trace_id=trace_id)
        reply = Reply(503, ack)
    if reply.retry_after is not None:
        headers["Retry-After"] = str(reply.retry_after)
    dims = reply.dims
    deps.metrics.inc(
        MetricName.ENVELOPE,
        repo=dims.repo_full_name if dims else None,
        user=dims.user_id if dims else None,
        provider=dims.sandbox_provider if dims else None,
        reason=reply.ack.status.value,
    )
    deps.metrics.envelope_seconds.observe(time.perf_counter() - started)
    # One line per envelope only at debug (a terminal at info counts these in its summary line).
    log.debug(
        "envelope_decided",
        status=reply.ack.status.value,
        reason=reply.ack.reason.value if reply.ack.reason else None,
        legacy_mode=reply.ack.legacy_mode,
        http_status=reply.http_status,
        trace_id=trace_id,
    )
    return JsonAnswer(reply.ack, reply.http_status, headers or None)


_TOKEN = DAEMON_TOKEN_HEADER.lower().encode("latin-1")
_TRACEPARENT = TRACEPARENT_HEADER.lower().encode("latin-1")
_CONTENT_LENGTH = b"content-length"


def _read_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """X-Daemon-Token, traceparent and Content-Length, each its first value (as Litestar's
    `Headers.get` answers: names compared case-insensitively, values decoded as latin-1)."""
    token = traceparent = content_length = None
    for name, value in raw:
        name = name.lower()
        if name == _TOKEN:
            if token is None:
                token = value.decode("latin-1")
        elif name == _TRACEPARENT:
            if traceparent is None:
                traceparent = value.decode("latin-1")
        elif name == _CONTENT_LENGTH and content_length is None:
            content_length = value.decode("latin-1")
    return token, traceparent, content_length


def _length(content_length: str | None) -> int | None:
    """Content-Length as Litestar's `Request.content_length` reads it (its error included)."""
    if content_length is None:
        return None
    try:
        return int(content_length)
    except ValueError:
        raise ClientException(f"Invalid content-length: {content_length!r}") from None


_FAILED = "terragon.daemon_event_failed"
"""Scope key: the exception the fast path hands to Litestar's exception handling."""


class DaemonEventFastPath:
    """`POST /api/daemon-event` from the ASGI scope straight to `post_daemon_event` (the module
    docstring says why); any other request goes on to `app` (Litestar's router)."""

    __slots__ = ("_app", "_errors", "_exception_handlers", "_handler")

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        handler = _registered_handler(litestar)
        # What Litestar would run around the handler for each request, and this path does not.
        assert set(handler.parsed_fn_signature.parameters) == {"request"} and not (
            handler.resolve_guards()
            or handler.resolve_before_request()
            or any(layer.after_request for layer in handler.ownership_layers)
            or handler.resolve_after_response()
            or handler.resolve_middleware()
            or handler.resolve_return_dto()
            or handler.cache
        ), "POST /api/daemon-event gained a per-request layer: the fast path would skip it"
        self._app = app
        self._handler = handler
        self._exception_handlers = handler.resolve_exception_handlers()
        self._errors = ExceptionHandlerMiddleware(_raise_failure, debug=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
            or not _host_valid(scope)  # Litestar's router answers 400 for it
        ):
            await self._app(scope, receive, send)
            return
        # What Litestar's router puts in the scope for the route.
        scope["path_params"] = {}
        scope["route_handler"] = self._handler
        scope["path_template"] = PATH
        try:
            answer = await _answer(scope["app"].state.daemon_events, scope, receive)
        except Exception as exc:
            ScopeState.from_scope(scope).exception_handlers = self._exception_handlers
            scope[_FAILED] = exc  # type: ignore[literal-required]
            await self._errors(scope, receive, send)
            return
        await answer(scope, receive, send)


def _registered_handler(litestar: Litestar) -> HTTPRouteHandler:
    for route in litestar.routes:
        if isinstance(route, HTTPRoute) and route.path == PATH:
            return route.route_handler_map["POST"][0]
    raise LookupError(f"no POST {PATH} route registered")


def _host_valid(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"host":
            return is_valid_host(value)
    return True


async def _raise_failure(scope: Scope, receive: Receive, send: Send) -> None:
    raise scope[_FAILED]  # type: ignore[literal-required]
