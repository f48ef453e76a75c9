"""The preview proxy over HTTP: a GET on a session origin (cookie verified, session read, access
cache hit, upstream address checked, request forwarded and streamed back) against the same GET
sent straight to the upstream, both sequential on kept-alive connections from this process.
Alternating blocks cancel out the machine's noise; the ratio is median proxied latency ÷ median
direct latency, and `overheadUs` is what the proxy adds to every request of a preview page."""

from __future__ import annotations

import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

from tools.bench.context import Context
from tools.bench.report import BenchResult
from tools.bench.stack import create_run, route_exists

NAME = "preview proxy GET (cache hit)"
TARGET = "reported: the proxy's cost per request"
SESSION_START = "/api/internal/preview/session/start"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a dev server answers
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return


def _timed(client: httpx.Client, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        response = client.get("/ok")
        if response.status_code != 200:
            raise RuntimeError(f"GET /ok answered {response.status_code}: {response.text[:200]}")
    return (time.perf_counter() - started) / n


def bench_preview_proxy(ctx: Context) -> list[BenchResult]:
    service = ctx.stack.service
    assert service is not None
    if not route_exists(service.url, "post", SESSION_START):
        return [BenchResult.skip(NAME, "µs/request", "preview sessions have not landed", TARGET)]
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{upstream.server_address[1]}"
    try:
        with ctx.stack.client() as client:
            run, _ = create_run(client, f"preview-bench-{ctx.phase()}")
            started = client.post(
                SESSION_START,
                json={
                    "threadId": run.thread_id,
                    "threadChatId": run.thread_chat_id,
                    "runId": run.run_id,
                    "userId": "bench-user",
                    "upstreamOrigin": origin,
                },
            )
            started.raise_for_status()
        session = started.json()
        # Python's resolver does not know *.localhost: connect to the service, name the session
        # in Host, as a browser's request to previewUrl does.
        host = urlsplit(session["previewUrl"]).netloc
        with (
            httpx.Client(base_url=service.url, headers={"host": host}, timeout=30) as proxied,
            httpx.Client(base_url=origin, timeout=30) as direct,
        ):
            exchanged = proxied.post(
                "/__terragon/exchange", json={"token": session["exchangeToken"]}
            )
            exchanged.raise_for_status()
            proxied.cookies.clear()
            proxied.headers["cookie"] = exchanged.headers["set-cookie"].split(";", 1)[0]
            block = 100
            rounds = 10 if ctx.options.quick else 30
            via_proxy: list[float] = []
            straight: list[float] = []
            deadline = time.monotonic() + ctx.options.seconds
            for i in range(rounds * 4):
                ctx.status(f"preview proxy: block {i + 1}")
                via_proxy.append(_timed(proxied, block))
                straight.append(_timed(direct, block))
                if i + 1 >= rounds and time.monotonic() > deadline:
                    break
    finally:
        upstream.shutdown()
        upstream.server_close()
    proxied_us = statistics.median(via_proxy) * 1e6
    direct_us = statistics.median(straight) * 1e6
    return [
        BenchResult(
            name=NAME,
            metric="µs/request",
            value=proxied_us,
            ceiling_name="the same GET to the upstream",
            ceiling=direct_us,
            ratio=proxied_us / direct_us if direct_us else None,
            target=TARGET,
            met=None,
            details={
                "overheadUs": round(proxied_us - direct_us, 1),
                "blocks": len(via_proxy),
                "requestsPerBlock": block,
                "note": "sequential, one connection each; service workers as --workers",
            },
        )
    ]
