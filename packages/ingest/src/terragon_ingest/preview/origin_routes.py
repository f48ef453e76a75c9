"""Routes of a preview session origin (CONTRACT §5), reached only through `host_routing`.

- `GET /__terragon/exchange?token=…` → 303 to `/` with the cookie (`Cache-Control: no-store`,
  `Referrer-Policy: no-referrer`: the token was in the URL); `POST` with `{token}` → 200
  `{expiresAt}` and the same cookie, for programs.
- `POST /__terragon/subscription-token` (cookie) → 200 `{token, expiresAt}`.
- any other path, any method → the upstream's response, streamed, with `x-proxy-req-id`.

Each starts the same way: the session must be live (else 404) and the request must come from
this origin's own pages or be a navigation (`cookie.cross_site_refusal`: `binding_mismatch`);
then the token, then the access cache, which fails closed (503 `cache_unavailable`).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import structlog
from litestar import Controller, HttpMethod, MediaType, Request, Response, get, post, route
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER

from terragon_core import (
    PREVIEW_SUBSCRIPTION_TOKEN_TTL_SECONDS,
    PROXY_REQUEST_ID_HEADER,
    EventOrigin,
    PreviewTokenAudience,
    SecurityReason,
)
from terragon_ingest.errors import NotFound
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.http import json_response
from terragon_ingest.kit.openapi import error_responses
from terragon_ingest.preview import proxy, service
from terragon_ingest.preview.addresses import (
    UpstreamRefused,
    UpstreamUnresolvable,
    checked_addresses,
)
from terragon_ingest.preview.cookie import cookie_values, cross_site_refusal, set_cookie
from terragon_ingest.preview.denials import AccessContext, PreviewDenied, denial_response, deny
from terragon_ingest.preview.deps import PreviewDeps
from terragon_ingest.preview.host_routing import SCOPE_KEY, SessionTarget
from terragon_ingest.preview.schemas import (
    ExchangeCreate,
    Exchanged,
    PreviewSession,
    SubscriptionToken,
)
from terragon_ingest.telemetry import trace_id_from

log = structlog.get_logger()

PROXY_METHODS = [
    HttpMethod.GET,
    HttpMethod.HEAD,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
    HttpMethod.OPTIONS,
]
_NO_STORE = {"cache-control": "no-store"}


async def _open(
    request: Request[Any, Any, Any],
    preview: PreviewDeps,
    origin: EventOrigin,
    proxy_req_id: str | None = None,
) -> tuple[SessionTarget, AccessContext, PreviewSession]:
    """The live session of this origin, for a request this origin may receive."""
    target = request.scope.get(SCOPE_KEY)
    if not isinstance(target, SessionTarget):
        raise NotFound("this path exists on preview session origins only")
    trace = trace_id_from(request.headers.get("traceparent"))
    ctx = AccessContext(
        origin, trace, preview_session_id=target.session_id, proxy_req_id=proxy_req_id
    )
    session = await service.live_session(preview.pool, ctx)
    headers = request.headers
    refusal = cross_site_refusal(
        request.method,
        headers.get("sec-fetch-site"),
        headers.get("sec-fetch-mode"),
        headers.get("sec-fetch-dest"),
    )
    if refusal:
        raise await deny(preview, ctx, SecurityReason.BINDING_MISMATCH, refusal)
    return target, ctx, session


async def _exchange(
    preview: PreviewDeps, ctx: AccessContext, session: PreviewSession, token: str
) -> tuple[str, Exchanged]:
    """Spend the exchange token; the cookie header and the answer's body."""
    await service.verify_token(preview, ctx, PreviewTokenAudience.EXCHANGE, [token], session)
    await service.check_access(preview, ctx)
    cookie = service.mint_cookie_token(preview.keyring, session)
    secure = preview.origins.secure
    return set_cookie(cookie.token, secure=secure), Exchanged(expires_at=cookie.expires_at)


async def _cookie_session(
    request: Request[Any, Any, Any],
    preview: PreviewDeps,
    ctx: AccessContext,
    session: PreviewSession,
) -> None:
    secure = preview.origins.secure
    tokens = cookie_values(request.headers.getall("cookie", []), secure=secure)
    await service.verify_token(preview, ctx, PreviewTokenAudience.COOKIE, tokens, session)
    await service.check_access(preview, ctx)


_NOT_HERE = "The Host names no live session (or this is not a session origin)."
# Denials answer the status of their `SecurityReason` (401 expired/revoked, 403, 409 token_replay,
# 503 cache down); the body is `ErrorBody` with that reason as `code`.
_EXCHANGE_ERRORS = error_responses(400, 401, 403, 404, 409, 503, s404=_NOT_HERE)


class SessionOriginController(Controller):
    """Served on `{previewUrl}` only (the Host names the session); 404 on the API's host."""

    path = "/__terragon"
    tags = ["preview session origin"]
    exception_handlers = {PreviewDenied: denial_response}

    @get(
        "/exchange",
        status_code=HTTP_303_SEE_OTHER,
        responses=_EXCHANGE_ERRORS,
    )
    async def exchange_redirect(
        self, token: FromQuery[str], request: Request[Any, Any, Any], preview: Injected[PreviewDeps]
    ) -> Response[bytes]:
        """Browsers: trade a one-time exchange token for the cookie, then go to `/`."""
        _, ctx, session = await _open(request, preview, EventOrigin.PREVIEW_EXCHANGE)
        cookie, _ = await _exchange(preview, ctx, session, token)
        headers = {
            "location": "/",
            "set-cookie": cookie,
            "referrer-policy": "no-referrer",
            **_NO_STORE,
        }
        return Response(
            b"", status_code=HTTP_303_SEE_OTHER, headers=headers, media_type=MediaType.TEXT
        )

    @post(
        "/exchange",
        status_code=HTTP_200_OK,
        responses=_EXCHANGE_ERRORS,
    )
    async def exchange(
        self,
        data: JSONBody[ExchangeCreate],
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
    ) -> Exchanged:
        """Programs: trade a one-time exchange token for the cookie (`Set-Cookie`)."""
        _, ctx, session = await _open(request, preview, EventOrigin.PREVIEW_EXCHANGE)
        cookie, body = await _exchange(preview, ctx, session, data.token)
        headers = {"set-cookie": cookie, **_NO_STORE}
        return json_response(body, HTTP_200_OK, headers)  # type: ignore[return-value]

    @post(
        "/subscription-token",
        status_code=HTTP_200_OK,
        responses=error_responses(401, 403, 404, 503, s404=_NOT_HERE),
    )
    async def subscription_token(
        self, request: Request[Any, Any, Any], preview: Injected[PreviewDeps]
    ) -> SubscriptionToken:
        """A 60 s broadcast token for this session, minted only after the cookie and access check."""
        _, ctx, session = await _open(request, preview, EventOrigin.PREVIEW_SUBSCRIPTION)
        await _cookie_session(request, preview, ctx, session)
        minted = service.mint_broadcast_token(
            preview.keyring, session, PREVIEW_SUBSCRIPTION_TOKEN_TTL_SECONDS
        )
        body = SubscriptionToken(token=minted.token, expires_at=minted.expires_at)
        return json_response(body, HTTP_200_OK, _NO_STORE)  # type: ignore[return-value]

    @route(
        ["/proxy", "/proxy/{path:path}"],  # = PROXY_MOUNT under this controller's path
        http_method=PROXY_METHODS,
        include_in_schema=False,
        request_max_body_size=None,
    )
    async def proxy(
        self,
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
        path: FromPath[str] = "/",
    ) -> Stream | Response[bytes]:
        """The upstream's response, streamed, with `x-proxy-req-id` (documented by `openapi`)."""
        proxy_req_id = uuid.uuid4().hex
        target, ctx, session = await _open(
            request, preview, EventOrigin.PREVIEW_PROXY, proxy_req_id
        )
        if request.headers.get("service-worker", "").strip().lower() == "script":
            message = "service workers may not be registered on a preview origin"
            raise await deny(preview, ctx, SecurityReason.PROXY_PATH_DENIED, message)
        await _cookie_session(request, preview, ctx, session)
        query = request.scope.get("query_string", b"").decode("latin-1")
        allow_private = preview.settings.preview.ALLOW_PRIVATE_UPSTREAM
        try:
            url = proxy.upstream_url(session.upstream_origin, target.raw_path, query)
            addresses = await checked_addresses(
                url.host, url.port or _default_port(url), allow_private=allow_private
            )
        except UpstreamRefused as exc:
            raise await deny(preview, ctx, exc.reason, str(exc)) from exc
        except UpstreamUnresolvable as exc:
            return _upstream_failed(session, proxy_req_id, exc, 502, "upstream_unavailable")
        address = addresses[0] if addresses else None
        try:
            return await proxy.forward(preview.http, request, url, proxy_req_id, address)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                return _upstream_failed(session, proxy_req_id, exc, 502, "upstream_unavailable")
            return _upstream_failed(session, proxy_req_id, exc, 504, "upstream_timeout")
        except httpx.HTTPError as exc:
            return _upstream_failed(session, proxy_req_id, exc, 502, "upstream_unavailable")


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _upstream_failed(
    session: PreviewSession, proxy_req_id: str, exc: Exception, status: int, code: str
) -> Response[bytes]:
    log.warning(
        "preview_upstream_failed",
        session=session.preview_session_id,
        upstream=session.upstream_origin,
        proxy_req_id=proxy_req_id,
        status=status,
        error=f"{type(exc).__name__}: {exc}",
        action="check the sandbox's preview server is up and answering on its upstream origin",
    )
    body = {
        "code": code,
        "error": f"upstream {code.removeprefix('upstream_')}: {type(exc).__name__}",
    }
    return json_response(body, status, {PROXY_REQUEST_ID_HEADER: proxy_req_id})
