"""Preview endpoints on the API's host: internal session start / remint / revoke, and the old
path-based public routes, which answer 410 with the session's `previewUrl` (nothing is served
or set there any more: a preview lives on its own origin, see `origin_routes`)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post, route
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_410_GONE

from terragon_core import PREVIEW_EXCHANGE_PATH
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.http import json_response
from terragon_ingest.kit.openapi import error_responses
from terragon_ingest.preview import sessions
from terragon_ingest.preview.denials import PreviewDenied, denial_response
from terragon_ingest.preview.deps import PreviewDeps
from terragon_ingest.preview.host_routing import server_port
from terragon_ingest.preview.origin import SESSION_ID
from terragon_ingest.preview.origin_routes import PROXY_METHODS
from terragon_ingest.preview.schemas import (
    MovedToSessionOrigin,
    SessionRevoked,
    SessionStartCreate,
    SessionStarted,
)
from terragon_ingest.telemetry import trace_id_from


def _trace(request: Request[Any, Any, Any]) -> str:
    return trace_id_from(request.headers.get("traceparent"))


class PreviewSessionController(Controller):
    path = "/api/internal/preview/session"
    tags = ["internal", "preview"]
    exception_handlers = {PreviewDenied: denial_response}

    @post("/start", status_code=HTTP_200_OK, responses=error_responses(400, 401, 403, 404, 503))
    async def start(
        self,
        data: JSONBody[SessionStartCreate],
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
    ) -> SessionStarted:
        """Create a session bound to the active run, for a user and an upstream origin.

        The user's browser then opens `{previewUrl}/__terragon/exchange?token={exchangeToken}`.
        """
        port = server_port(request.scope)
        return await sessions.start_session(preview, data, _trace(request), port)

    @post(
        "/{preview_session_id:str}/remint",
        status_code=HTTP_200_OK,
        responses=error_responses(400, 401, 404, 503),
    )
    async def remint(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
    ) -> SessionStarted:
        """New exchange token; every cookie minted before stops working."""
        port = server_port(request.scope)
        return await sessions.remint_session(preview, preview_session_id, _trace(request), port)

    @post(
        "/{preview_session_id:str}/revoke",
        status_code=HTTP_200_OK,
        responses=error_responses(400, 401, 404, 503),
    )
    async def revoke(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
    ) -> SessionRevoked:
        """Revoke the session: its cookies and tokens stop working at once."""
        return await sessions.revoke_session(preview, preview_session_id, _trace(request))


class LegacyPreviewController(Controller):
    """`/api/preview/session/{id}/…` and `/api/preview/proxy/{id}/…`: 410 for every method."""

    path = "/api/preview"
    tags = ["preview"]

    @route(
        [
            "/session/{preview_session_id:str}/{rest:path}",
            "/proxy/{preview_session_id:str}",
            "/proxy/{preview_session_id:str}/{rest:path}",
        ],
        http_method=PROXY_METHODS,
        status_code=HTTP_410_GONE,
        # Not in /schema: a route that answers 410 to every request is no operation a client can
        # call (schemathesis rightly flags every valid request as rejected); CONTRACT §5 and the
        # 410 body itself (`previewUrl`) are where an old link learns where to go.
        include_in_schema=False,
    )
    async def moved(
        self,
        preview_session_id: FromPath[str],
        request: Request[Any, Any, Any],
        preview: Injected[PreviewDeps],
        rest: FromPath[str] = "",  # declared so /schema types it as a plain string
    ) -> MovedToSessionOrigin:
        """Gone: each preview session has an origin of its own (CONTRACT §5)."""
        url = None
        if SESSION_ID.match(preview_session_id):
            url = sessions.preview_url(
                preview.origins, preview_session_id, server_port(request.scope)
            )
        body = MovedToSessionOrigin(
            code="Gone",
            error=(
                "preview routes moved to the session's own origin: open "
                f"{{previewUrl}}{PREVIEW_EXCHANGE_PATH}?token=… (see previewUrl)"
            ),
            preview_url=url,
        )
        return json_response(body, HTTP_410_GONE)  # type: ignore[return-value]
