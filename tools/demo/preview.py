"""A demo sandbox's preview: a small page server on 127.0.0.1 (a page, its script and an event
stream of the time), and a preview session on it each round, whose exchange link the demo logs,
so `terragon up --demo` has a preview to open in a browser."""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

log = logging.getLogger("demo")

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
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start_session(
        self, http: httpx.Client, thread_id: str, user_id: str, start: dict[str, Any]
    ) -> None:
        """A session bound to the run just started; log where a browser opens it."""
        response = http.post(
            "/api/internal/preview/session/start",
            json={
                "threadId": thread_id,
                "threadChatId": "main",
                "runId": start["runId"],
                "userId": user_id,
                "upstreamOrigin": self.origin,
            },
        )
        if response.status_code != 200:
            log.warning(
                "preview session for %s answered %s: %s",
                thread_id,
                response.status_code,
                response.text[:200],
            )
            return
        session = response.json()
        log.info(
            "preview of %s: open %s/__terragon/exchange?token=%s (one use, 5 min)",
            thread_id,
            session["previewUrl"],
            session["exchangeToken"],
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
