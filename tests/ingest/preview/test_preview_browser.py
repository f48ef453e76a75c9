"""Preview session origins in a real browser: Debian's chromium driven by Playwright against the
app under uvicorn and two real upstreams on 127.0.0.1 (sessions A and B of one user).

One user, one browser profile, both previews opened (so the browser holds both cookies):

- opening A's `previewUrl` through the exchange redirect shows A's page with its script, style
  sheet, image and event stream loaded through the cookie (and none of it carries a credential
  to the upstream);
- a script on A's page that fetches B's origin with credentials gets nothing of B's, though B's
  upstream answers with permissive CORS, and B's upstream never sees the request;
- registering a service worker from A's page is refused, and the script is never fetched upstream;
- the page's EventSource stream arrives as the upstream sends it;
- the page mints a subscription token with its cookie.

Screenshots land in `.artifacts/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from terragon_core import PREVIEW_COOKIE_NAME, PreviewTokenAudience
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.browser import ARTIFACTS, MARKS, launch
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.preview import Upstream
from tests.fixtures.runs import START_PATH, start_body, thread_body

pytestmark = MARKS

PAGE = b"""<!doctype html>
<html><head><title>preview A</title><link rel="stylesheet" href="/style.css"></head>
<body><h1 id="title">Session A preview</h1>
<img id="pixel" src="/pixel.svg" width="40" height="40" alt="pixel">
<pre id="log"></pre>
<script src="/app.js"></script></body></html>
"""

APP_JS = b"""
window.appLoaded = true;
window.sseMessages = [];
const log = (line) => { document.getElementById('log').textContent += line + '\\n'; };
const events = new EventSource('/sse');
events.onmessage = (e) => { window.sseMessages.push(e.data); log('event: ' + e.data); };
window.fetchOther = async (url) => {
  try {
    const r = await fetch(url, {credentials: 'include'});
    const body = await r.text();
    log('fetch of B: ' + r.status + ' ' + body);
    return {status: r.status, body: body};
  } catch (e) { log('fetch of B: ' + e); return {error: String(e)}; }
};
window.registerWorker = async () => {
  try { await navigator.serviceWorker.register('/sw.js'); log('worker: registered'); return 'registered'; }
  catch (e) { log('worker: ' + e); return 'refused: ' + String(e); }
};
window.mintToken = async () => {
  const r = await fetch('/__terragon/subscription-token', {method: 'POST'});
  const body = await r.json();
  log('subscription token: ' + r.status + (body.token ? ' (minted)' : ' ' + JSON.stringify(body)));
  return {status: r.status, body: body};
};
log('app.js ran');
"""

PIXEL = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
    b'<rect width="40" height="40" fill="#0a7"/></svg>'
)


def _pages_a() -> dict[str, tuple[str, bytes, bytes]]:
    return {
        "/": ("text/html; charset=utf-8", PAGE, b""),
        "/app.js": ("text/javascript", APP_JS, b""),
        "/style.css": ("text/css", b"body { background: rgb(1, 2, 3); color: white; }", b""),
        "/pixel.svg": ("image/svg+xml", PIXEL, b""),
        "/sw.js": ("text/javascript", b"self.addEventListener('fetch', () => {});", b""),
    }


def _pages_b(origin_a: str) -> dict[str, tuple[str, bytes, bytes]]:
    # B's upstream is as permissive as an upstream can be: only the preview origin stands
    # between A's page and B's data.
    cors = (
        f"access-control-allow-origin: {origin_a}\r\naccess-control-allow-credentials: true\r\n"
    ).encode()
    return {
        "/": ("text/html", b"<h1>Session B preview</h1>", b""),
        "/secret.json": ("application/json", b'{"secret": "B-only"}', cors),
    }


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    server = LiveServer(settings, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _start(api: httpx.Client, thread_id: str, upstream: str) -> dict[str, Any]:
    assert api.post("/api/internal/threads", json=thread_body(thread_id)).status_code == 201
    run = api.post(START_PATH, json=start_body(thread_id, request_id=f"req-{thread_id}"))
    assert run.status_code == 200, run.text
    started = api.post(
        "/api/internal/preview/session/start",
        json={
            "threadId": thread_id,
            "threadChatId": "chat-1",
            "runId": run.json()["runId"],
            "userId": "user-1",
            "upstreamOrigin": upstream,
        },
    )
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    return body


def _exchange_url(session: dict[str, Any]) -> str:
    return f"{session['previewUrl']}/__terragon/exchange?token={session['exchangeToken']}"


def _denials(database_url: str, session_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT origin, properties->>'reason' FROM preview_event "
            "WHERE event_name = 'v1.preview.access.denied' AND preview_session_id = %s",
            (session_id,),
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def test_two_previews_in_one_browser_stay_apart(live: LiveServer, database_url: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    with (
        Upstream(pages=_pages_a()) as upstream_a,
        httpx.Client(base_url=live.url, headers=headers, timeout=30) as api,
    ):
        a = _start(api, "thread-a", upstream_a.origin)
        with Upstream(pages=_pages_b(a["previewUrl"])) as upstream_b:
            b = _start(api, "thread-b", upstream_b.origin)
            with sync_playwright() as p:
                browser = launch(p)
                try:
                    context = browser.new_context(viewport={"width": 900, "height": 600})
                    page = context.new_page()

                    # The user opens B, then A, each through its exchange link.
                    page.goto(_exchange_url(b))
                    assert page.locator("h1").inner_text() == "Session B preview"
                    page.goto(_exchange_url(a))
                    assert page.url == a["previewUrl"] + "/"  # the token left the address bar
                    page.wait_for_function("window.appLoaded === true", timeout=15_000)
                    page.wait_for_function(
                        "document.getElementById('pixel').naturalWidth > 0", timeout=15_000
                    )
                    assert page.locator("#title").inner_text() == "Session A preview"
                    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                    assert background == "rgb(1, 2, 3)"  # the style sheet came through

                    # The event stream arrives as the upstream sends it.
                    page.wait_for_function("window.sseMessages.includes('one')", timeout=15_000)
                    assert not upstream_a.finished.is_set()
                    upstream_a.release.set()
                    page.wait_for_function("window.sseMessages.includes('two')", timeout=15_000)
                    page.screenshot(path=str(ARTIFACTS / "preview-session-a.png"), full_page=True)

                    # A's page reaching for B with the user's credentials gets nothing of B's.
                    stolen = page.evaluate(
                        "(url) => window.fetchOther(url)", b["previewUrl"] + "/secret.json"
                    )
                    assert "error" in stolen, stolen
                    assert "B-only" not in json.dumps(stolen)

                    # A service worker cannot be registered from A's page.
                    assert page.evaluate("window.isSecureContext") is True
                    worker = page.evaluate("window.registerWorker()")
                    assert worker.startswith("refused:"), worker

                    # The page mints a subscription token with its cookie.
                    minted = page.evaluate("window.mintToken()")
                    assert minted["status"] == 200, minted
                    claims = jwt.decode(
                        minted["body"]["token"], options={"verify_signature": False}
                    )
                    assert claims["aud"] == PreviewTokenAudience.BROADCAST.value
                    assert claims["sid"] == a["previewSessionId"]
                    page.screenshot(
                        path=str(ARTIFACTS / "preview-session-a-probes.png"), full_page=True
                    )

                    cookies: dict[tuple[str, str], dict[str, Any]] = {
                        (str(c.get("name")), str(c.get("domain"))): dict(c)
                        for c in context.cookies()
                    }
                finally:
                    browser.close()
            paths_b = upstream_b.paths()
        paths_a = upstream_a.paths()
        served_a = list(upstream_a.requests)

    # Each origin holds its own host-only cookie, exactly as CONTRACT §5 sets it; no upstream
    # cookie was set anywhere.
    assert sorted(name for name, _ in cookies) == [PREVIEW_COOKIE_NAME, PREVIEW_COOKIE_NAME]
    for session in (a, b):
        cookie = cookies[(PREVIEW_COOKIE_NAME, f"{session['previewSessionId']}.preview.localhost")]
        assert (cookie["path"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (
            "/",
            True,
            "Lax",
            False,
        )
        assert 1700 < cookie["expires"] - time.time() <= 1800
    # Everything A's page loaded went through the proxy, and no request carried a credential.
    assert {"/", "/app.js", "/style.css", "/pixel.svg", "/sse"} <= set(paths_a)
    assert "/sw.js" not in paths_a
    for _line, received in served_a:
        assert "cookie" not in received and "authorization" not in received, _line
    # B's upstream served the user's own visit (and the browser's favicon), never A's reach.
    assert "/" in paths_b
    assert "/secret.json" not in paths_b
    assert ("preview_proxy", "binding_mismatch") in _denials(database_url, b["previewSessionId"])
    assert ("preview_proxy", "proxy_path_denied") in _denials(database_url, a["previewSessionId"])
