"""`POST /api/daemon-event` (CONTRACT §4): daemons post envelopes here with `X-Daemon-Token`.

The route checks the token from the headers (`authenticate`) before it reads anything of the
body: a missing or unknown token is 401 at the cost of its headers (CONTRACT §3). Then it reads the
raw body itself under `TERRAGON_MAX_BODY_BYTES` (413 `too_large`; Litestar's own limit is lifted
for this route so it cannot pre-empt the body) and hands it to the decision.
Every answer is JSON with `status`; a database or object-store outage is 503 `unavailable` with
`Retry-After`, and nothing was written.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from litestar import Request, post
from litestar.exceptions import ClientException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp

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
from terragon_ingest.kit.http import JsonAnswer, read_capped_body
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


@post(
    "/api/daemon-event",
    status_code=200,
    tags=["daemon"],
    request_max_body_size=None,  # our own cap below answers 413 with a `status` body
    responses=RESPONSES,
)
async def post_daemon_event(request: Request[Any, Any, Any]) -> ASGIApp:
    """Deliver one envelope: applied exactly once, acked as duplicate / stale, or quarantined."""
    started = time.perf_counter()
    # The hot path reads its deps off the app, not through `Injected[DaemonEventsDeps]`:
    # Litestar's dependency resolution builds a `State` and validates kwargs on every request.
    deps: DaemonEventsDeps = request.app.state.daemon_events
    request_headers = request.headers  # built from the scope on each access: read once
    trace_id = trace_id_from(request_headers.get(TRACEPARENT_HEADER))
    headers: dict[str, str] = {}
    try:
        # The token from the headers first: a stranger's body is never read (CONTRACT §3).
        sender = await authenticate(deps, request_headers.get(DAEMON_TOKEN_HEADER))
        if isinstance(sender, Reply):
            reply = sender
        elif (
            early := refuse_over_budget(deps.budgets, sender, request.content_length)
        ) is not None:
            reply = early  # 429 before the body: the run is known to be spent
            # Close rather than receive and discard the unread body on this connection (the
            # daemon opens a connection per attempt anyway).
            headers["Connection"] = "close"
        elif (body := await read_capped_body(request, deps.settings.server.MAX_BODY_BYTES)) is None:
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
