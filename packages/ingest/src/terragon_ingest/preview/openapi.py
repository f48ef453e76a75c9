"""How `/schema` documents the session-origin routes, which are routed by `Host`, not by path.

OpenAPI 3.1 lets a path item name its own `servers`: the session-origin paths
(`/__terragon/exchange`, `/__terragon/subscription-token`, and `/{path}` for everything the
upstream serves) carry the `TERRAGON_PREVIEW_ORIGIN` template as their only server, with
`{previewSessionId}` as a server variable (the same syntax). Called against the API's own
server those paths answer 404, which each one documents. `/{path}` stands for every path outside
`/__terragon/`, slashes included; its body and status are the upstream's (`default`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request, Router
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    Schema,
    Server,
    ServerVariable,
)

from terragon_core import (
    PREVIEW_EXCHANGE_PATH,
    PREVIEW_SESSION_ID_PLACEHOLDER,
    PREVIEW_SUBSCRIPTION_TOKEN_PATH,
    PROXY_REQUEST_ID_HEADER,
    SecurityReason,
)

if TYPE_CHECKING:
    from litestar.openapi.spec import OpenAPI

    from terragon_ingest.preview.origin import OriginTemplate

UPSTREAM_PATH = "/{path}"
_TAG = "preview session origin"


def session_origin_server(template: OriginTemplate) -> Server:
    variables = {
        "previewSessionId": ServerVariable(
            default="0" * 32, description="The session id from the session-start answer."
        )
    }
    url = template.text()
    if url.endswith(":<port>"):
        url = url.removesuffix(":<port>") + ":{port}"
        variables["port"] = ServerVariable(default="8000", description="The server's own port.")
    assert PREVIEW_SESSION_ID_PLACEHOLDER in url
    return Server(
        url=url,
        description="Each preview session's own origin (`previewUrl`); the Host names the session.",
        variables=variables,
    )


def _json(schema: Schema) -> dict[str, OpenAPIMediaType]:
    return {"application/json": OpenAPIMediaType(schema=schema)}


_STRING = Schema(type=OpenAPIType.STRING)
_DENIAL = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "error"],
    properties={
        "code": Schema(type=OpenAPIType.STRING, enum=[r.value for r in SecurityReason]),
        "error": _STRING,
        "retryAfterMs": Schema(type=OpenAPIType.INTEGER),
        "backoffHint": _STRING,
    },
)
_UPSTREAM_FAILURE = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "error"],
    properties={
        "code": Schema(type=OpenAPIType.STRING, enum=["upstream_unavailable", "upstream_timeout"]),
        "error": _STRING,
    },
)
_REQ_ID: dict[str, OpenAPIHeader | Reference] = {
    PROXY_REQUEST_ID_HEADER: OpenAPIHeader(schema=_STRING, description="Proxy request id.")
}

_RETRY_AFTER: dict[str, OpenAPIHeader | Reference] = {
    "Retry-After": OpenAPIHeader(schema=_STRING, description="Seconds to wait.")
}


def _upstream_operation(method: str) -> Operation:
    denied = OpenAPIResponse(
        description="Denied (`{code, error}`, the status of the `SecurityReason`).",
        content=_json(_DENIAL),
        headers=_REQ_ID,
    )
    return Operation(
        tags=[_TAG],
        summary="The upstream's response",
        description=(
            "Any path outside `/__terragon/`, any method: forwarded to the session's upstream "
            "with the preview cookie required; the response is streamed back with "
            "`x-proxy-req-id`. A `Service-Worker: script` request is refused (403 "
            "`proxy_path_denied`)."
        ),
        operation_id=f"PreviewUpstream{method.capitalize()}",
        parameters=[
            Parameter(
                name="path",
                param_in="path",
                required=True,
                schema=_STRING,
                description="Any path outside `/__terragon/` (may contain `/`).",
            )
        ],
        responses={
            "default": OpenAPIResponse(
                description="The upstream's own response, streamed.", headers=_REQ_ID
            ),
            "401": denied,
            "403": denied,
            "404": OpenAPIResponse(
                description="The Host names no live session (or this is not a session origin)."
            ),
            "502": OpenAPIResponse(
                description="The upstream is unreachable.", content=_json(_UPSTREAM_FAILURE)
            ),
            "503": OpenAPIResponse(
                description="The access cache is unavailable (fails closed).",
                content=_json(_DENIAL),
                headers=_RETRY_AFTER,
            ),
            "504": OpenAPIResponse(
                description="No byte from the upstream within the idle timeout.",
                content=_json(_UPSTREAM_FAILURE),
            ),
        },
    )


def document_session_origin(openapi: OpenAPI, template: OriginTemplate) -> None:
    """Give the session-origin paths their own server, and add `/{path}` for the upstream."""
    paths = openapi.paths or {}
    if UPSTREAM_PATH in paths:
        return
    server = session_origin_server(template)
    for name in (PREVIEW_EXCHANGE_PATH, PREVIEW_SUBSCRIPTION_TOKEN_PATH):
        item = paths.get(name)
        if isinstance(item, PathItem):
            item.servers = [server]
    paths[UPSTREAM_PATH] = PathItem(
        servers=[server],
        get=_upstream_operation("get"),
        head=_upstream_operation("head"),
        post=_upstream_operation("post"),
        put=_upstream_operation("put"),
        patch=_upstream_operation("patch"),
        delete=_upstream_operation("delete"),
        options=_upstream_operation("options"),
    )
    openapi.paths = paths


def schema_router(path: str, template: OriginTemplate) -> Router:
    """The router `/schema` is served from; it documents the session origin on first use
    (building the schema at start would cost every app ~40 ms, most never serve it)."""

    def document(request: Request[Any, Any, Any]) -> None:
        document_session_origin(request.app.openapi_schema, template)

    return Router(path=path, route_handlers=[], include_in_schema=False, before_request=document)
