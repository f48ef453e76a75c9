"""Host-based routing to preview session origins, before Litestar routes the path.

Installed around the app's ASGI handler (`install`, like Litestar's own CORS middleware), so the
decision is made on the `Host` header first:

- a Host outside the preview namespace is the API, exactly as before; there the reserved
  `/__terragon/` paths do not exist (404), so nothing of a session origin is reachable from it;
- a Host in the namespace whose session part is not a session id → 404;
- on a session origin, `/__terragon/exchange` and `/__terragon/subscription-token` go to their
  routes, any other `/__terragon/` path is a 404, and every other path is routed to the proxy
  route under `PROXY_MOUNT` (never to an API route: `/api/...` on a session origin is the
  upstream's). The handlers read the session and the path as sent from `scope[SCOPE_KEY]`.

Websockets are not proxied: one on a session origin is closed (4404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog
from litestar.exceptions import LitestarException

from terragon_core import (
    PREVIEW_EXCHANGE_PATH,
    PREVIEW_RESERVED_PREFIX,
    PREVIEW_SUBSCRIPTION_TOKEN_PATH,
)
from terragon_ingest.preview.origin import SESSION_ID, OriginTemplate
from terragon_ingest.preview.proxy import UpstreamIdle

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger()

SCOPE_KEY: Final = "terragon.preview_target"
PROXY_MOUNT: Final = "/__terragon/proxy"
"""Internal route of the proxy; a request can only reach it through this router."""
_SERVICE_PATHS: Final = frozenset({PREVIEW_EXCHANGE_PATH, PREVIEW_SUBSCRIPTION_TOKEN_PATH})


@dataclass(frozen=True, slots=True)
class SessionTarget:
    """A request on a session origin: the session id from its Host, the path as sent."""

    session_id: str
    raw_path: str
    """Still percent-encoded (what the proxy forwards)."""


def server_port(scope: Scope | dict[str, Any]) -> int | None:
    """The port this request arrived on (the default session origin uses the server's port)."""
    server = scope.get("server")
    port = server[1] if server else None
    return int(port) if port is not None else None


def _host(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    return None


async def _not_found(send: Send, message: str) -> None:
    body = msgspec.json.encode({"error": message, "code": "NotFound"})
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class PreviewHostRouter:
    def __init__(self, app: ASGIApp, template: OriginTemplate) -> None:
        self.app = app
        self.template = template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        port = server_port(scope)
        session_part = self.template.session_in(_host(scope), port)
        path: str = scope["path"]
        if session_part is None:
            if path.startswith(PREVIEW_RESERVED_PREFIX) and scope["type"] == "http":
                await _not_found(send, "/__terragon/ paths exist on preview session origins only")
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404, "reason": "not proxied"})
            return
        if not SESSION_ID.match(session_part):
            await _not_found(send, "no preview session at this origin")
            return
        if path.startswith(PREVIEW_RESERVED_PREFIX) and path not in _SERVICE_PATHS:
            await _not_found(send, f"{path} is reserved on preview origins and does not exist")
            return
        raw = (scope.get("raw_path") or path.encode()).split(b"?", 1)[0]
        target = SessionTarget(session_part, raw.decode("latin-1"))
        routed = path if path in _SERVICE_PATHS else PROXY_MOUNT + path
        inner: Any = {**scope, "path": routed, "raw_path": routed.encode(), SCOPE_KEY: target}
        try:
            await self.app(inner, receive, send)
        except LitestarException as exc:
            if not _caused_by_idle_upstream(exc):
                raise
            # Already logged; returning with the body incomplete makes the server close the
            # connection, so the client sees a cut response, not a complete short one.


def _caused_by_idle_upstream(exc: BaseException) -> bool:
    """Litestar reports an error after the response started as a `LitestarException` from the
    stream's task group; true when all it holds is the proxy's `UpstreamIdle`."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        matched, rest = cause.split(UpstreamIdle)
        return matched is not None and rest is None
    return isinstance(cause, UpstreamIdle)


def install(app: Litestar, template: OriginTemplate) -> None:
    """Route session-origin Hosts before Litestar's router sees the path."""
    app.asgi_handler = PreviewHostRouter(app.asgi_handler, template)
