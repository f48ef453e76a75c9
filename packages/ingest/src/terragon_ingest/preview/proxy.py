"""The preview proxy: one request to the session's upstream origin, streamed back unbuffered.

`upstream_url` refuses what could leave the origin or climb out of it: absolute and
scheme-relative URLs, `.`/`..` segments (also percent-encoded), backslashes and control
characters (`proxy_path_denied`); the built URL must still have the session's origin
(`proxy_ssrf_blocked`). `forward` streams the upstream body chunk by chunk (server-sent events
arrive as they are sent), drops hop-by-hop headers, never forwards the preview cookie and never
follows redirects.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx
from litestar.response import Stream

from terragon_core import PREVIEW_COOKIE_NAME, PROXY_REQUEST_ID_HEADER, SecurityReason

if TYPE_CHECKING:
    from litestar import Request

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
"""Never copied between the two hops (plus `content-length` on the way back: it is re-streamed)."""
_SCHEME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SAFE: Final = "/!$&'()*+,;=:@-._~"


class ProxyRefused(Exception):
    def __init__(self, reason: SecurityReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def upstream_url(origin: str, path: str, query: str) -> httpx.URL:
    """`origin` + the request path, or `ProxyRefused` for anything that could leave it."""
    path = path.removeprefix("/")
    if path.startswith("/") or _SCHEME.match(path):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "absolute URLs are not proxied")
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "backslash or control character")
    segments = path.split("/")
    if any(s in {".", ".."} or s.lower() in {"%2e", "%2e%2e", ".%2e", "%2e."} for s in segments):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "dot segments are not proxied")
    url = httpx.URL(origin + "/" + quote(path, safe=_SAFE) + (f"?{query}" if query else ""))
    expected = httpx.URL(origin)
    same = (url.scheme, url.host, url.port) == (expected.scheme, expected.host, expected.port)
    if not same or url.userinfo or expected.userinfo:
        raise ProxyRefused(SecurityReason.PROXY_SSRF_BLOCKED, "target left the session's origin")
    return url


def _request_headers(request: Request[Any, Any, Any], proxy_req_id: str) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP:
            continue
        if lower == "cookie":
            kept = [
                c
                for c in value.split(";")
                if c.strip() and c.strip().split("=", 1)[0] != PREVIEW_COOKIE_NAME
            ]
            if kept:
                headers.append(("cookie", ";".join(kept).strip()))
            continue
        headers.append((name, value))
    headers.append((PROXY_REQUEST_ID_HEADER, proxy_req_id))
    return headers


async def forward(
    http: httpx.AsyncClient, request: Request[Any, Any, Any], url: httpx.URL, proxy_req_id: str
) -> Stream:
    """Send the request upstream and stream the answer back (raises `httpx.HTTPError`)."""
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    upstream_request = http.build_request(
        request.method,
        url,
        headers=_request_headers(request, proxy_req_id),
        content=request.stream() if has_body else None,
    )
    response = await http.send(upstream_request, stream=True)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in HOP_BY_HOP | {"content-length", "set-cookie"}
    }
    headers[PROXY_REQUEST_ID_HEADER] = proxy_req_id
    return Stream(
        body(),
        status_code=response.status_code,
        headers=headers,
        media_type=response.headers.get("content-type", "application/octet-stream"),
    )
