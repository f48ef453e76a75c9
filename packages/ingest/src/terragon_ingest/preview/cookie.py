"""The preview cookie on a session origin (CONTRACT §5), and who may send requests with it.

Set: host-only (no `Domain`), `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure` when the origin
is https, `Max-Age=1800`. Read: every `terragon_preview` value the browser sent, because a
sibling origin's page can plant a same-named cookie with `Domain=` its parent (cookie tossing);
the first value that verifies for this session wins, so a planted one cannot lock the user out.

`cross_site_refusal` applies a resource isolation policy on Fetch Metadata: sibling session
origins are the same *site*, so `SameSite=Lax` still sends B's cookie with a request from A's
page; such a request (other than a top-level or frame navigation) is refused before it reaches
B's upstream, which stops cross-preview reads, CSRF against B's app and script inclusion.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from terragon_core import PREVIEW_COOKIE_NAME, PREVIEW_SESSION_TTL_SECONDS

MAX_COOKIE_VALUES: Final = 4
"""At most this many `terragon_preview` values are tried (bounded work per request)."""
_NAVIGATION_DESTS_REFUSED: Final = frozenset({"object", "embed"})


def set_cookie(token: str, *, secure: bool) -> str:
    """The `Set-Cookie` value of a preview cookie."""
    return (
        f"{PREVIEW_COOKIE_NAME}={token}; Max-Age={PREVIEW_SESSION_TTL_SECONDS}; Path=/; "
        "HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    )


def cookie_values(cookie_headers: Iterable[str]) -> list[str]:
    """Every preview cookie value in the request's `Cookie` header(s), in order, at most 4."""
    values: list[str] = []
    for header in cookie_headers:
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name.strip() == PREVIEW_COOKIE_NAME and value.strip():
                values.append(value.strip())
    return values[:MAX_COOKIE_VALUES]


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
