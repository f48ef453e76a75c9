"""One HTTP attempt and the retry policy, against a real server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import random
import re
import socket

import pytest

from terragon_daemon.sender import (
    DEAD_LETTER,
    DELIVERED,
    RETRY,
    Backoff,
    HttpSender,
    classify,
    parse_retry_after,
    trace_id_from,
    traceparent_for,
)
from tests.daemon_bundle.support import DROP, FakeIngest, Reply


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, DELIVERED),
        (202, DELIVERED),
        (204, DELIVERED),
        (400, DEAD_LETTER),
        (401, DEAD_LETTER),
        (403, DEAD_LETTER),
        (404, DEAD_LETTER),
        (413, DEAD_LETTER),
        (408, RETRY),
        (429, RETRY),
        (500, RETRY),
        (502, RETRY),
        (503, RETRY),
    ],
)
def test_classify(status: int, outcome: str) -> None:
    assert classify(status) == outcome


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("99999") == 600.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(4))
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {backoff.delay(failures) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: retries of many daemons do not line up
    assert backoff.delay(1, retry_after=30.0) == 30.0


def test_traceparent_keeps_the_run_trace_and_varies_the_span() -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    first, second = traceparent_for(trace), traceparent_for(trace)
    assert re.fullmatch(rf"00-{trace}-[0-9a-f]{{16}}-01", first)
    assert first != second
    assert trace_id_from(first) == trace
    assert trace_id_from("garbage") is None
    assert trace_id_from("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None


def test_post_sends_token_traceparent_and_exact_body(ingest: FakeIngest) -> None:
    ingest.respond(Reply(202, {"status": "quarantined", "reason": "mismatch"}))
    trace = traceparent_for("0af7651916cd43dd8448eb211c80319c")
    attempt = HttpSender(timeout=5).post(ingest.url + "/", "tok-1", trace, b'{"threadId":"t"}')
    assert (attempt.outcome, attempt.http_status) == (DELIVERED, 202)
    assert (attempt.body_status, attempt.reason) == ("quarantined", "mismatch")
    [request] = ingest.received
    assert request.path == "/api/daemon-event"
    assert request.headers["x-daemon-token"] == "tok-1"
    assert request.headers["traceparent"] == trace
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"threadId":"t"}'


def test_post_reads_retry_after(ingest: FakeIngest) -> None:
    ingest.respond(Reply(503, {"status": "unavailable"}, {"Retry-After": "7"}))
    attempt = HttpSender(timeout=5).post(ingest.url, "tok", traceparent_for("a" * 32), b"{}")
    assert (attempt.outcome, attempt.http_status, attempt.retry_after) == (RETRY, 503, 7.0)


def test_dropped_connection_is_a_retry(ingest: FakeIngest) -> None:
    ingest.respond(DROP)
    attempt = HttpSender(timeout=5).post(ingest.url, "tok", traceparent_for("a" * 32), b"{}")
    assert attempt.outcome == RETRY
    assert attempt.http_status is None and attempt.error


def test_refused_connection_is_a_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        attempt = HttpSender(timeout=5).post(
            f"http://127.0.0.1:{port}", "tok", traceparent_for("a" * 32), b"{}"
        )
    assert attempt.outcome == RETRY
    assert "ConnectionRefused" in (attempt.error or "")


def test_non_json_error_body_is_tolerated(ingest: FakeIngest) -> None:
    ingest.respond(Reply(413, None))
    attempt = HttpSender(timeout=5).post(ingest.url, "tok", traceparent_for("a" * 32), b"{}")
    assert (attempt.outcome, attempt.http_status, attempt.body_status) == (DEAD_LETTER, 413, None)
