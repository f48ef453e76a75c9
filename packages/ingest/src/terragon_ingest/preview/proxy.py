"""The preview proxy: one request to the session's upstream origin, streamed back unbuffered.

`upstream_url` refuses what could leave the origin or climb out of it: absolute and
scheme-relative URLs, `.`/`..` segments (also percent-encoded), backslashes and control
characters (`proxy_path_denied`); the built URL must still have the session's origin
(`proxy_ssrf_blocked`). The path is the one the browser sent, still percent-encoded.

Header hygiene (CONTRACT §5). Toward the upstream: no `Authorization`, no cookie at all (the
preview cookie, and whatever a parent domain's site set for its own users: the browser sends
those to a session origin too, and the sandbox must never see them), no hop-by-hop headers
(plus any header `Connection` names), no client-sent `x-proxy-req-id`. From the upstream: no
`Set-Cookie`, `Service-Worker-Allowed`, `Clear-Site-Data`, nor `Access-Control-Allow-Credentials`
(no other origin may read a session's responses with its cookie), no hop-by-hop headers; and
`Cross-Origin-Resource-Policy: same-origin`, so another origin cannot embed them either.

`forward` never follows redirects, connects to the address `addresses.checked_addresses`
vetted (the name still goes in `Host` and in TLS SNI), and ends a response after the idle
timeout without a byte: before the headers that is a 504, mid-body the stream is cut
(`UpstreamIdle`), so the client sees an incomplete response rather than a short one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx
import structlog
from litestar.response import Stream

from terragon_core import PROXY_REQUEST_ID_HEADER, SecurityReason
from terragon_ingest.preview.addresses import UpstreamRefused

if TYPE_CHECKING:
    from litestar import Request

log = structlog.get_logger()

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
"""Never copied between the two hops (plus `content-length` on the way back: it is re-streamed)."""
NOT_TO_UPSTREAM: Final = frozenset({"authorization", "cookie", PROXY_REQUEST_ID_HEADER})
NOT_FROM_UPSTREAM: Final = frozenset(
    {
        "content-length",
        "set-cookie",
        "set-cookie2",
        "service-worker-allowed",
        "clear-site-data",
        "access-control-allow-credentials",
        "cross-origin-resource-policy",
        PROXY_REQUEST_ID_HEADER,
    }
)
_SCHEME: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_SAFE: Final = "/!$&'()*+,;=:@-._~%"
_DOT_SEGMENTS: Final = frozenset({".", "..", "%2e", "%2e%2e", ".%2e", "%2e."})


class ProxyRefused(UpstreamRefused):
    """The request may not be proxied (path or origin); `reason` is the wire `SecurityReason`."""


class UpstreamIdle(Exception):
    """The upstream sent no byte for the idle timeout in the middle of a body: cut the stream."""


def upstream_url(origin: str, raw_path: str, query: str) -> httpx.URL:
    """`origin` + the request's raw path, or `ProxyRefused` for anything that could leave it."""
    path = raw_path.removeprefix("/")
    if path.startswith("/") or _SCHEME.match(path):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "absolute URLs are not proxied")
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "backslash or control character")
    segments = path.split("/")
    if any(s.lower() in _DOT_SEGMENTS for s in segments):
        raise ProxyRefused(SecurityReason.PROXY_PATH_DENIED, "dot segments are not proxied")
    url = httpx.URL(origin + "/" + quote(path, safe=_SAFE) + (f"?{query}" if query else ""))
    expected = httpx.URL(origin)
    same = (url.scheme, url.host, url.port) == (expected.scheme, expected.host, expected.port)
    if not same or url.userinfo or expected.userinfo:
        raise ProxyRefused(SecurityReason.PROXY_SSRF_BLOCKED, "target left the session's origin")
    return url


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Header names listed in `Connection` are hop-by-hop too (RFC 9110 §7.6.1)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }


def request_headers(
    headers: list[tuple[str, str]], proxy_req_id: str, host: str
) -> list[tuple[str, str]]:
    """What the upstream receives: the client's headers minus the hygiene lists, our `Host`."""
    dropped = HOP_BY_HOP | NOT_TO_UPSTREAM | _connection_tokens(headers)
    kept = [(name, value) for name, value in headers if name.lower() not in dropped]
    return [("host", host), *kept, (PROXY_REQUEST_ID_HEADER, proxy_req_id)]


def response_headers(headers: list[tuple[str, str]], proxy_req_id: str) -> dict[str, str]:
    """What the browser receives: the upstream's headers minus the hygiene lists. A repeated
    header is joined with ", " (the one that cannot be, `Set-Cookie`, never passes)."""
    dropped = HOP_BY_HOP | NOT_FROM_UPSTREAM | _connection_tokens(headers)
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower not in dropped:
            kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    kept["cross-origin-resource-policy"] = "same-origin"
    kept[PROXY_REQUEST_ID_HEADER] = proxy_req_id
    return kept


def pinned_request(
    http: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: list[tuple[str, str]],
    content: AsyncIterator[bytes] | None,
    address: str | None,
) -> httpx.Request:
    """A request to `url`, sent to `address` when given (the vetted IP; `Host` and SNI keep
    the name, so virtual hosts and certificate checks still see it)."""
    extensions: dict[str, Any] = {}
    target = url
    if address is not None:
        target = url.copy_with(host=address)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
    return http.build_request(
        method, target, headers=headers, content=content, extensions=extensions
    )


async def forward(
    http: httpx.AsyncClient,
    request: Request[Any, Any, Any],
    url: httpx.URL,
    proxy_req_id: str,
    address: str | None,
) -> Stream:
    """Send the request upstream and stream the answer back (raises `httpx.HTTPError`)."""
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    authority = url.netloc.decode("ascii")
    upstream_request = pinned_request(
        http,
        request.method,
        url,
        request_headers(list(request.headers.multi_items()), proxy_req_id, authority),
        request.stream() if has_body else None,
        address,
    )
    response = await http.send(upstream_request, stream=True)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            log.warning(
                "preview_upstream_idle",
                upstream=str(url.copy_with(path="/", query=None)),
                proxy_req_id=proxy_req_id,
                action="the upstream stopped sending; the response was cut (idle timeout)",
            )
            raise UpstreamIdle(proxy_req_id) from exc
        finally:
            await response.aclose()

    return Stream(
        body(),
        status_code=response.status_code,
        headers=response_headers(response.headers.multi_items(), proxy_req_id),
        media_type=response.headers.get("content-type", "application/octet-stream"),
    )
