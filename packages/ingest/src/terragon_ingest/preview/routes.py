"""Preview endpoints: internal session start / remint / revoke, and the three public paths
(exchange, proxy, subscription-token) that decide access through the cache and fail closed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import structlog
from litestar import Controller, HttpMethod, Request, Response, post, route
from litestar.exceptions import NotAuthorizedException, NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from terragon_core import (
    PREVIEW_COOKIE_NAME,
    PREVIEW_SESSION_TTL_SECONDS,
    PREVIEW_SUBSCRIPTION_TOKEN_TTL_SECONDS,
    PROXY_REQUEST_ID_HEADER,
    EventOrigin,
    PreviewTokenAudience,
)
from terragon_ingest.kit.http import json_response
from terragon_ingest.preview import proxy, service, sessions
from terragon_ingest.preview.denials import AccessContext, PreviewDenied, denial_response, deny
from terragon_ingest.preview.lifespan import preview_runtime
from terragon_ingest.preview.schemas import (
    ExchangeCreate,
    Exchanged,
    SessionRevoked,
    SessionStartCreate,
    SessionStarted,
    SubscriptionToken,
)
from terragon_ingest.services import ServicesDep
from terragon_ingest.telemetry import trace_id_from

log = structlog.get_logger()

_PROXY_METHODS = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
]


def _trace(request: Request[Any, Any, Any]) -> str:
    return trace_id_from(request.headers.get("traceparent"))


def preview_cookie(session_id: str, token: str) -> str:
    """`Secure; HttpOnly; Path=/api/preview/proxy/{id}; Max-Age=1800`, no `Domain`."""
    return (
        f"{PREVIEW_COOKIE_NAME}={token}; Max-Age={PREVIEW_SESSION_TTL_SECONDS}; "
        f"Path=/api/preview/proxy/{session_id}; Secure; HttpOnly"
    )


class PreviewSessionController(Controller):
    path = "/api/internal/preview/session"
    tags = ["internal", "preview"]
    exception_handlers = {PreviewDenied: denial_response}

    @post("/start", status_code=HTTP_200_OK, raises=[ValidationException, NotFoundException])
    async def start(
        self,
        data: JSONBody[SessionStartCreate],
        request: Request[Any, Any, Any],
        services: ServicesDep,
    ) -> SessionStarted:
        """Create a session bound to the active run, for a user and an upstream origin."""
        return await sessions.start_session(services, data, _trace(request))

    @post("/{preview_session_id:str}/remint", status_code=HTTP_200_OK, raises=[NotFoundException])
    async def remint(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        services: ServicesDep,
    ) -> SessionStarted:
        """New exchange token; every cookie minted before stops working."""
        return await sessions.remint_session(services, preview_session_id, _trace(request))

    @post("/{preview_session_id:str}/revoke", status_code=HTTP_200_OK, raises=[NotFoundException])
    async def revoke(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        services: ServicesDep,
    ) -> SessionRevoked:
        """Revoke the session: its cookies and tokens stop working at once."""
        return await sessions.revoke_session(services, preview_session_id, _trace(request))


class PreviewController(Controller):
    path = "/api/preview"
    tags = ["preview"]
    exception_handlers = {PreviewDenied: denial_response}

    @post(
        "/session/{preview_session_id:str}/exchange",
        status_code=HTTP_200_OK,
        raises=[ValidationException, NotAuthorizedException],
    )
    async def exchange(
        self,
        preview_session_id: FromPath[str],
        data: JSONBody[ExchangeCreate],
        request: Request[Any, Any, Any],
        services: ServicesDep,
    ) -> Response[bytes]:
        """Trade a one-time exchange token for the preview cookie."""
        ctx = AccessContext(
            EventOrigin.PREVIEW_EXCHANGE, _trace(request), preview_session_id=preview_session_id
        )
        aud = PreviewTokenAudience.EXCHANGE
        session = await service.verify_token(services, ctx, aud, data.token)
        await service.check_access(services, ctx)
        cookie = service.mint_cookie_token(services, session)
        body = Exchanged(preview_session_id=preview_session_id, expires_at=cookie.expires_at)
        response = json_response(body)
        response.headers["set-cookie"] = preview_cookie(preview_session_id, cookie.token)
        return response

    @post(
        "/session/{preview_session_id:str}/subscription-token",
        status_code=HTTP_200_OK,
        raises=[NotAuthorizedException],
    )
    async def subscription_token(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        services: ServicesDep,
    ) -> SubscriptionToken:
        """A 60 s one-time broadcast token, minted only after the access check."""
        ctx = AccessContext(
            EventOrigin.PREVIEW_SUBSCRIPTION, _trace(request), preview_session_id=preview_session_id
        )
        cookie = request.cookies.get(PREVIEW_COOKIE_NAME)
        aud = PreviewTokenAudience.COOKIE
        session = await service.verify_token(services, ctx, aud, cookie)
        await service.check_access(services, ctx)
        ttl = PREVIEW_SUBSCRIPTION_TOKEN_TTL_SECONDS
        minted = service.mint_broadcast_token(services, session, ttl)
        return SubscriptionToken(token=minted.token, expires_at=minted.expires_at)

    @route(
        ["/proxy/{preview_session_id:str}", "/proxy/{preview_session_id:str}/{path:path}"],
        http_method=_PROXY_METHODS,
        raises=[NotAuthorizedException],
    )
    async def proxy(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        services: ServicesDep,
        path: FromPath[str] = "/",
    ) -> Stream | Response[bytes]:
        """The upstream's response, streamed, with `x-proxy-req-id`."""
        proxy_req_id = uuid.uuid4().hex
        ctx = AccessContext(
            EventOrigin.PREVIEW_PROXY,
            _trace(request),
            preview_session_id=preview_session_id,
            proxy_req_id=proxy_req_id,
        )
        cookie = request.cookies.get(PREVIEW_COOKIE_NAME)
        aud = PreviewTokenAudience.COOKIE
        session = await service.verify_token(services, ctx, aud, cookie)
        await service.check_access(services, ctx)
        try:
            url = proxy.upstream_url(session.upstream_origin, path, request.url.query or "")
        except proxy.ProxyRefused as exc:
            raise await deny(services, ctx, exc.reason, str(exc)) from exc
        try:
            return await proxy.forward(preview_runtime(services).http, request, url, proxy_req_id)
        except httpx.HTTPError as exc:
            log.warning(
                "preview_upstream_unreachable",
                session=preview_session_id,
                upstream=session.upstream_origin,
                error=f"{type(exc).__name__}: {exc}",
                action="check the sandbox's preview server is up on its upstream origin",
            )
            body = {
                "code": "upstream_unavailable",
                "error": f"upstream unreachable: {type(exc).__name__}",
            }
            return json_response(body, 502, {PROXY_REQUEST_ID_HEADER: proxy_req_id})
