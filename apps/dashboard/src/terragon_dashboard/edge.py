"""The dashboard's edge (CONTRACT §7): the host names it answers to, and the password sign-in.

Why a middleware on `st.App` rather than a proxy in front: Streamlit 1.67 serves on Starlette
under uvicorn, and `st.App(middleware=..., routes=...)` is its supported hook; the middleware runs
before Streamlit's own routes for the page, static files and the websocket alike, with no second
hop or port to own. (Streamlit's `server.allowedHosts` guards only the websocket.)

- `HostGuard` refuses (403) a request whose `Host` is not one of the dashboard's names, any
  request whose `Origin` is foreign, and a websocket without a same-site `Origin`. With
  `TERRAGON_DASHBOARD_AUTH=password` it also lets through only requests with a valid session
  cookie (a page load without one is sent to the sign-in page; a websocket is refused).
- `SignIn` serves `GET/POST /_terragon/sign-in`: a plain HTML form (not a Streamlit widget: only
  an HTTP answer can set an HttpOnly cookie, and only a route sees the client's address), the
  per-client throttle, a log line per failure.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterable
from typing import Final

from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from terragon_core import DASHBOARD_SESSION_COOKIE, SecurityReason
from terragon_dashboard import auth, log
from terragon_dashboard.settings import DashboardSettings

SIGN_IN_PATH: Final = "/_terragon/sign-in"
PUBLIC_PATHS: Final = frozenset({SIGN_IN_PATH, "/_stcore/health"})
"""What a browser reaches without a session when sign-in is on: the form, and the health check."""
MAX_FORM_BYTES: Final = 4096
DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1")
_LOGGED_HOSTS_MAX: Final = 100


def normalize_host(value: str) -> str | None:
    """`Name[:port]` or `[v6]:port` → the lower-case name without port, brackets or trailing
    dot; None if it is not a plain host (userinfo, a path, a bad port)."""
    try:
        parts = urllib.parse.urlsplit(f"//{value.strip()}")
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if not parts.hostname or parts.username or parts.password or parts.path or parts.query:
        return None
    return parts.hostname.rstrip(".") or None


def allowed_hosts(configured: Iterable[str], bind_address: str | None) -> frozenset[str]:
    """`TERRAGON_DASHBOARD_HOSTS`, else the bind address, `localhost` and `127.0.0.1`."""
    names = list(configured) or [*DEFAULT_HOSTS, *([bind_address] if bind_address else [])]
    return frozenset(n for n in map(normalize_host, names) if n)


def _bind_address() -> str | None:
    from streamlit import config

    return str(config.get_option("server.address") or "") or None


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


def _origin_host(origin: str) -> str | None:
    parts = urllib.parse.urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return normalize_host(parts.netloc)


class HostGuard:
    """ASGI middleware: the dashboard answers only to its names (and, with sign-in on, only to
    signed-in browsers)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: DashboardSettings | None = None,
        sessions: auth.Sessions = auth.SESSIONS,
    ) -> None:
        self.app = app
        self.settings = settings or DashboardSettings.from_env()
        self.sessions = sessions
        self._hosts: frozenset[str] | None = None
        self._logged: set[str] = set()

    @property
    def hosts(self) -> frozenset[str]:
        if self._hosts is None:  # the bind address is known once Streamlit has read its config
            self._hosts = allowed_hosts(self.settings.HOSTS, _bind_address())
        return self._hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope["type"], headers)
        if refusal is not None:
            self._log_refusal(refusal, headers)
            await _refuse(scope, receive, send, 403, "403: this dashboard does not answer here.")
            return
        if self.settings.AUTH is not None and scope["path"] not in PUBLIC_PATHS:
            cookies = cookie_parser("; ".join(headers.get("cookie", [])))
            if not self.sessions.check(cookies.get(DASHBOARD_SESSION_COOKIE)).ok:
                await _to_sign_in(scope, receive, send, DASHBOARD_SESSION_COOKIE in cookies)
                return
        await self.app(scope, receive, send)

    def _refusal(self, kind: str, headers: dict[str, list[str]]) -> str | None:
        """Why the request is refused, or None."""
        hosts = headers.get("host", [])
        if len(hosts) != 1:
            return "not exactly one Host header"
        if normalize_host(hosts[0]) not in self.hosts:
            return "host"
        origins = headers.get("origin", [])
        if kind == "websocket" and len(origins) != 1:
            return "a websocket without one Origin"
        if any(_origin_host(origin) not in self.hosts for origin in origins):
            return "origin"
        return None

    def _log_refusal(self, why: str, headers: dict[str, list[str]]) -> None:
        """Once per host name (bounded): a rebinding page can send thousands."""
        host = ",".join(headers.get("host", []))[:200]
        key = f"{why}|{host}"
        if key in self._logged or len(self._logged) >= _LOGGED_HOSTS_MAX:
            return
        self._logged.add(key)
        log.event(
            "warning",
            "dashboard_request_refused",
            why=why,
            host=host,
            origin=",".join(headers.get("origin", []))[:200],
            reason=SecurityReason.PERMISSION_DENIED.value,
            action="answered 403; a DNS-rebinding page or a name this dashboard does not know: "
            "if the name is yours, add it to TERRAGON_DASHBOARD_HOSTS (logged once per name)",
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    if scope["type"] == "websocket":  # closed before accept: the server answers 403
        await send({"type": "websocket.close", "code": 1008})
        return
    await PlainTextResponse(text, status_code=status, headers=_NO_STORE)(scope, receive, send)


async def _to_sign_in(scope: Scope, receive: Receive, send: Send, had_cookie: bool) -> None:
    """No valid session: a page load goes to the form (dropping a dead cookie), anything else
    is refused."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    response: Response
    if scope["method"] in ("GET", "HEAD"):
        response = RedirectResponse(SIGN_IN_PATH, status_code=303, headers=_NO_STORE)
    else:
        response = PlainTextResponse("401: sign in first.", status_code=401, headers=_NO_STORE)
    if had_cookie:
        response.delete_cookie(DASHBOARD_SESSION_COOKIE, path="/")
    await response(scope, receive, send)


_NO_STORE: Final = {"Cache-Control": "no-store"}
_PAGE_HEADERS: Final = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    # not no-referrer: with it a browser sends `Origin: null` on the form's POST (refused)
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · terragon dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f6f7f9; color: #222; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem;
  border-radius: .6rem; box-shadow: 0 1px 4px #0002; }}
h1 {{ font-size: 1.4rem; margin: 0 0 1.2rem; }}
label {{ display: block; margin-bottom: .4rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
button {{ margin-top: 1rem; padding: .5rem 1.2rem; font-size: 1rem; }}
.message {{ color: #b00020; margin: 1rem 0 0; }}
.hint {{ color: #666; font-size: .85rem; margin-top: 1.2rem; }}
</style></head>
<body><main>
<h1>Sign in</h1>
<form method="post" action="{action}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" autofocus
 required>
<button type="submit">Sign in</button>
</form>
{message}
<p class="hint">Set by TERRAGON_DASHBOARD_PASSWORD where the dashboard runs.
A sign-in lasts {hours} hours in this browser.</p>
</main></body></html>
"""


def sign_in_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    shown = f'<p class="message" role="alert">{html.escape(message)}</p>' if message else ""
    body = _PAGE.format(action=SIGN_IN_PATH, message=shown, hours=auth.SESSIONS.lifetime // 3600)
    return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)


class SignIn:
    """`GET/POST /_terragon/sign-in` (HostGuard has already checked `Host` and `Origin`)."""

    def __init__(
        self,
        settings: DashboardSettings | None = None,
        sessions: auth.Sessions = auth.SESSIONS,
        throttle: auth.SignInThrottle = auth.THROTTLE,
    ) -> None:
        self.settings = settings or DashboardSettings.from_env()
        self.sessions, self.throttle = sessions, throttle

    def routes(self) -> list[Route]:
        return [Route(SIGN_IN_PATH, self.endpoint, methods=["GET", "POST"])]

    async def endpoint(self, request: Request) -> Response:
        if self.settings.AUTH is None:  # nothing to sign in to
            return RedirectResponse("/", status_code=303, headers=_NO_STORE)
        problem = auth.config_problem(self.settings.AUTH, self.settings.PASSWORD)
        if problem or self.settings.PASSWORD is None:
            return sign_in_page(f"The dashboard's sign-in is misconfigured: {problem}.", 503)
        if request.method != "POST":
            if self.sessions.check(request.cookies.get(DASHBOARD_SESSION_COOKIE)).ok:
                return RedirectResponse("/", status_code=303, headers=_NO_STORE)
            response = sign_in_page()
            if DASHBOARD_SESSION_COOKIE in request.cookies:
                response.delete_cookie(DASHBOARD_SESSION_COOKIE, path="/")
            return response
        client = auth.client_key(request.client.host if request.client else None)
        wait = self.throttle.retry_after(client)
        if wait is not None:
            response = sign_in_page(
                f"Too many failed sign-ins from your address: try again in {wait} s.", 429
            )
            response.headers["Retry-After"] = str(wait)
            return response
        password = await _form_password(request)
        if password is None:
            return sign_in_page("The sign-in form was not understood.", 400)
        if not auth.password_matches(password, self.settings.PASSWORD):
            return self._failed(client)
        self.throttle.succeeded(client)
        response = RedirectResponse("/", status_code=303, headers=_NO_STORE)
        response.set_cookie(
            DASHBOARD_SESSION_COOKIE,
            self.sessions.issue(),
            max_age=self.sessions.lifetime,
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        log.event("info", "dashboard_signed_in", client=client)
        return response

    def _failed(self, client: str) -> Response:
        failures = self.throttle.failed(client)
        most = self.throttle.max_failures
        log.event(
            "warning",
            "dashboard_sign_in_failed",
            client=client,
            failures=failures,
            of=most,
            reason=SecurityReason.PERMISSION_DENIED.value,
            action="a wrong dashboard password was tried; many from one address is someone "
            "guessing: block the address, and set a new TERRAGON_DASHBOARD_PASSWORD if it may "
            "be known",
        )
        if failures >= most:
            log.event(
                "warning",
                "dashboard_sign_in_throttled",
                client=client,
                retry_after=self.throttle.retry_after(client),
                reason=SecurityReason.RATE_LIMITED.value,
                action=f"{most} failed sign-ins within a minute: this address's tries are "
                "refused (429) for a minute; nothing to do unless it repeats",
            )
        return sign_in_page("Wrong password.", 401)


async def _form_password(request: Request) -> str | None:
    """The `password` field of a urlencoded form of at most `MAX_FORM_BYTES`, or None."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = urllib.parse.parse_qs(body.decode(), max_num_fields=4, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("password", [])
    return values[0] if len(values) == 1 else None
