"""A demo sandbox's preview: a small page server on 127.0.0.1 (a page, its script and an event
stream of the time), and a launcher: one short link, printed once, that opens it in a browser.

A preview session's exchange link holds a one-use token that lives 5 minutes, so a link logged
each round is long, stale within minutes and scrolls the terminal. The launcher
(`http://127.0.0.1:PORT/`) instead starts a session on sandbox 0's current run at each visit
(`POST /api/internal/preview/session/start`) and redirects the browser to that session's exchange
link. It answers only to its own address as the Host (a DNS-rebinding page gets 403), on the
loopback address of the machine `terragon up` runs on, with that server's development secrets.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import structlog

log = structlog.get_logger()

PAGE = b"""<!doctype html><html><head><title>demo preview</title></head>
<body style="font-family: sans-serif"><h1>Demo sandbox preview</h1>
<p>Served by the sandbox's dev server, through this session's own origin.</p>
<p>Server time: <span id="clock">...</span></p><script src="/app.js"></script></body></html>"""
APP_JS = b"""new EventSource('/events').onmessage = (e) => {
  document.getElementById('clock').textContent = e.data;
};"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path == "/events":
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            try:
                for _ in range(600):  # ten minutes, then the browser reconnects
                    self.wfile.write(f"data: {time.strftime('%H:%M:%S')}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(1)
            except OSError:
                pass
            return
        body, kind = (APP_JS, "text/javascript") if self.path == "/app.js" else (PAGE, "text/html")
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class DemoPreview:
    """Sandbox 0's page server (the preview's upstream) and the launcher in front of it."""

    def __init__(self, api: str, token: str, launcher_port: int = 0) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api, self.token = api, token
        self._lock = threading.Lock()
        self._run: tuple[str, str, str] | None = None
        self.launcher = ThreadingHTTPServer(("127.0.0.1", launcher_port), _launcher_handler(self))
        self.launcher.daemon_threads = True
        threading.Thread(target=self.launcher.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def link(self) -> str:
        """The one link to print: a fresh preview session at each visit."""
        return f"http://127.0.0.1:{self.launcher.server_address[1]}/"

    def run_started(self, thread_id: str, user_id: str, start: dict[str, Any]) -> None:
        """The run a visit of the launcher opens a session on (each round starts a new one)."""
        with self._lock:
            self._run = (thread_id, user_id, str(start["runId"]))

    def open_session(self) -> tuple[int, str]:
        """(302, the exchange link) for a new session on the current run, or (status, why)."""
        with self._lock:
            run = self._run
        if run is None:
            return 503, "no demo run yet: the first round starts within a few seconds"
        thread_id, user_id, run_id = run
        try:
            response = httpx.post(
                f"{self.api}/api/internal/preview/session/start",
                headers={"Authorization": f"Bearer {self.token}"},
                json={
                    "threadId": thread_id,
                    "threadChatId": "main",
                    "runId": run_id,
                    "userId": user_id,
                    "upstreamOrigin": self.origin,
                },
                timeout=15,
            )
        except httpx.HTTPError as exc:
            log.warning("demo_preview_session_failed", thread_id=thread_id, error=repr(exc))
            return 502, "the API did not answer; see terragon up's log"
        if response.status_code != 200:
            log.warning(
                "demo_preview_session_failed",
                thread_id=thread_id,
                status=response.status_code,
                body=response.text[:200],
            )
            return 502, f"the API answered {response.status_code}; see terragon up's log"
        session = response.json()
        log.debug("demo_preview_session_started", thread_id=thread_id)
        return 302, f"{session['previewUrl']}/__terragon/exchange?token={session['exchangeToken']}"

    def close(self) -> None:
        for server in (self.launcher, self.server):
            server.shutdown()
            server.server_close()


def _launcher_handler(preview: DemoPreview) -> type[BaseHTTPRequestHandler]:
    class Launcher(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            port = preview.launcher.server_address[1]
            if self.headers.get("Host") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                self._answer(403, "this link answers to its own address only")
                return
            if self.path != "/":
                self._answer(404, "open / for the demo preview")
                return
            status, target = preview.open_session()
            if status != 302:
                self._answer(status, target)
                return
            self.send_response(302)
            self.send_header("location", target)
            self.send_header("cache-control", "no-store")  # a new one-use link each visit
            self.send_header("content-length", "0")
            self.end_headers()

        def _answer(self, status: int, text: str) -> None:
            body = text.encode() + b"\n"
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Launcher
