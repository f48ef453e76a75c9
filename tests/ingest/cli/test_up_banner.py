"""`terragon up` says it is up only once its API answers, and says clearly when it never does
(issue 24 item 5): the banner's thread against a real HTTP server that answers 503, then 200."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from terragon_ingest import cli, log_config
from terragon_ingest.stopping import StopSignals
from tests.fixtures.waiting import wait_until


class Api:
    """/readyz answers 503 until `ready` is set."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.asked = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.asked += 1
                self.send_response(200 if api.ready.is_set() else 503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/readyz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="api")
def fx_api() -> Iterator[Api]:
    api = Api()
    yield api
    api.close()


@pytest.fixture(name="logged")
def fx_logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    err = io.StringIO()
    yield err
    monkeypatch.undo()
    log_config.stop_status_line()
    log_config.configure_logging("info", json=True)


LINES = {"api": "http://127.0.0.1:1", "previews": "p", "postgres": "pg", "valkey": "vk"}
LINES |= {"data_dir": "/d", "secrets": "s", "dashboard": "http://127.0.0.1:2"}
LINES |= {"dashboard_access": "open"}


def _events(err: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.getvalue().splitlines()]


def test_the_banner_waits_for_the_api_to_answer(
    api: Api, logged: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", logged)  # `up` logs on stdout
    log_config.configure_logging("info", json=True, stream=log_config.log_stream("up"))
    banner = cli.UpBanner(api.url, dict(LINES), StopSignals())
    banner.start()
    try:
        wait_until(lambda: api.asked >= 3, 30, "three probes answered 503")
        assert not [e for e in _events(logged) if e["event"] == "terragon_up"]
        api.ready.set()
        wait_until(lambda: "terragon_up" in logged.getvalue(), 30, "the banner")
    finally:
        banner.cancel()
    [up] = [e for e in _events(logged) if e["event"] == "terragon_up"]
    assert up["api"] == "http://127.0.0.1:1" and float(str(up["ready_after_seconds"])) > 0
    assert banner.failure is None


def test_an_api_that_never_answers_is_a_clear_error_and_a_stop(
    api: Api, logged: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", logged)  # `up` logs on stdout
    log_config.configure_logging("info", json=True, stream=log_config.log_stream("up"))
    monkeypatch.setattr(cli, "READY_TIMEOUT_SECONDS", 1.0)
    stopped = threading.Event()
    monkeypatch.setattr(cli, "_request_stop", stopped.set)  # not a SIGTERM to the test run
    banner = cli.UpBanner(api.url, dict(LINES), StopSignals())
    banner.start()
    try:
        assert stopped.wait(30), "up was not asked to stop"
    finally:
        banner.cancel()
    assert banner.failure == "the API did not answer within 1 s"
    events = _events(logged)
    [error] = [e for e in events if e["event"] == "api_not_answering"]
    assert error["level"] == "error" and error["url"] == api.url and "stops" in str(error["action"])
    assert not [e for e in events if e["event"] == "terragon_up"]


@pytest.mark.parametrize(
    ("host", "probe"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/readyz"),
        ("0.0.0.0", "http://127.0.0.1:8000/readyz"),
        ("::", "http://[::1]:8000/readyz"),
        ("::1", "http://[::1]:8000/readyz"),
        ("localhost", "http://localhost:8000/readyz"),
    ],
)
def test_the_probe_asks_the_bound_address_or_loopback(host: str, probe: str) -> None:
    assert cli._probe_url(host, 8000) == probe
