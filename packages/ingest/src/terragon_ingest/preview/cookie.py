"""The preview cookie on a session origin (CONTRACT §5), and who may send requests with it.

Set: host-only (no `Domain`), `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure` when the origin
is https, `Max-Age=1800`; on an https origin the name is `__Host-terragon_preview`, which a
browser accepts only from the host itself, so there no other origin can plant one at all. Read:
every value of that name the request carries (up to 32, from the raw `Cookie` headers: Litestar's
`request.cookies` keeps one value per name), because on http a sibling origin's page can plant a
same-named cookie with `Domain=` its parent (cookie tossing) or a longer `Path` (sent first); the
first value that is a valid credential of this session wins, so planted ones cannot lock the user
out. On https only the `__Host-` name is read: an unprefixed value may come from anywhere.

`cross_site_refusal` applies a resource isolation policy on Fetch Metadata: sibling session
origins are the same *site*, so `SameSite=Lax` still sends B's cookie with a request from A's
page; such a request (other than a top-level or frame navigation) is refused before it reaches
B's upstream, which stops cross-preview reads, CSRF against B's app and script inclusion.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from terragon_core import (
    PREVIEW_COOKIE_MAX_VALUES,
    PREVIEW_SESSION_TTL_SECONDS,
    preview_cookie_name,
)

_NAVIGATION_DESTS_REFUSED: Final = frozenset({"object", "embed"})


def set_cookie(token: str, *, secure: bool) -> str:
    """The `Set-Cookie` value of a preview cookie (`__Host-` prefixed when `secure`)."""
    return (
        f"{preview_cookie_name(secure)}={token}; Max-Age={PREVIEW_SESSION_TTL_SECONDS}; Path=/; "
        "HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    )


def cookie_values(cookie_headers: Iterable[str], *, secure: bool) -> list[str]:
    """Every preview cookie value in the request's `Cookie` header(s), in order, at most 32
    (distinct values: the same planted value sent twice is tried once)."""
    wanted = preview_cookie_name(secure)
    values: dict[str, None] = {}
    for header in cookie_headers:
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name.strip() == wanted and value.strip():
                values[value.strip()] = None
                if len(values) == PREVIEW_COOKIE_MAX_VALUES:
                    return list(values)
    return list(values)


def cross_site_refusal(
    method: str, site: str | None, mode: str | None, dest: str | None
) -> str | None:
    """Why a request must be refused by Fetch Metadata, or `None` to let it through.

    Allowed: no `Sec-Fetch-Site` (programs, older browsers), `same-origin`, `none` (typed in
    the address bar), and GET navigations from anywhere (the platform links to the exchange URL).
    """
    if site is None or site in {"same-origin", "none"}:
        return None
    if mode == "navigate" and method == "GET" and (dest or "") not in _NAVIGATION_DESTS_REFUSED:
        return None
    return (
        f"a {site} {mode or 'unknown-mode'} request from another origin is refused on a preview "
        "origin (only this origin's own pages and navigations may use it)"
    )
