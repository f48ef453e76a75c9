"""Hand-written hostile bodies against `POST /api/daemon-event` on a real socket (uvicorn on
127.0.0.1): each is answered with its documented 4xx, quickly, and nothing is stored but what
CONTRACT §4 says (the database is queried after each case). Skips until the route has landed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.runs import START_PATH, start_body

QUICK = 5.0
"""Seconds within which every hostile body must be answered."""


@pytest.fixture(name="live")
def fx_live(settings: Any) -> Iterator[LiveServer]:
    server = LiveServer(settings, free_port())
    server.start()
    try:
        schema = httpx.get(server.url + "/schema/openapi.json", timeout=10).json()
        if "/api/daemon-event" not in schema.get("paths", {}):
            pytest.skip("POST /api/daemon-event has not landed yet (daemon_events/)")
        yield server
    finally:
        server.stop()


@pytest.fixture(name="run")
def fx_run(live: LiveServer) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    thread = {
        "threadId": "hostile-1",
        "userId": "u1",
        "repoFullName": "acme/web",
        "sandboxProvider": "manual",
        "codesandboxId": "sb-hostile-1",
    }
    httpx.post(live.url + "/api/internal/threads", json=thread, headers=headers).raise_for_status()
    started = httpx.post(
        live.url + START_PATH,
        json=start_body("hostile-1", chat="c1", request_id="r1"),
        headers=headers,
    )
    started.raise_for_status()
    body = started.json()
    return {
        "runId": body["runId"],
        "token": body["daemonMessage"]["token"],
        "threadId": "hostile-1",
    }


def _stored(database_url: str, run: dict[str, str]) -> tuple[int, int, int]:
    """(accepted events, accepted messages, quarantine rows) for the run's thread."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT accepted_event_count, accepted_message_count FROM thread_run WHERE run_id = %s",
            (run["runId"],),
        ).fetchone()
        quarantined = conn.execute(
            "SELECT count(*) FROM daemon_event_quarantine WHERE thread_id = %s", (run["threadId"],)
        ).fetchone()
    assert row is not None and quarantined is not None
    return int(row[0]), int(row[1]), int(quarantined[0])


def _post(live: LiveServer, run: dict[str, str], body: bytes) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        live.url + "/api/daemon-event",
        content=body,
        headers={"X-Daemon-Token": run["token"], "Content-Type": "application/json"},
        timeout=60,
    )
    return response, time.monotonic() - started


def _envelope_prefix(run: dict[str, str]) -> bytes:
    return (
        f'{{"threadId":"{run["threadId"]}","threadChatId":"c1","payloadVersion":2,'
        f'"runId":"{run["runId"]}","eventId":"e1","seq":1,'
    ).encode()


CASES: dict[str, Any] = {
    "deep-nesting": lambda p: p + b'"messages":[{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
    "huge-array-of-wrong-type": lambda p: p + b'"messages":[' + b",".join([b"0"] * 500_000) + b"]}",
    "invalid-utf8": lambda p: p + b'"messages":[{"type":"assistant","text":"\xff\xfe\xfd"}]}',
    "nan": lambda p: p.replace(b'"seq":1,', b'"seq":NaN,') + b'"messages":[]}',
    "not-json": lambda p: p[:40],
    "wrong-types": lambda p: p.replace(b'"seq":1,', b'"seq":"1",') + b'"messages":[]}',
}


def _check_400(live: LiveServer, run: dict[str, str], database_url: str, name: str) -> None:
    response, elapsed = _post(live, run, CASES[name](_envelope_prefix(run)))
    assert response.status_code == 400, f"{name}: {response.status_code} {response.text[:200]}"
    assert response.json()["status"] == "invalid"
    assert elapsed < QUICK, f"{name}: answered in {elapsed:.1f} s"
    assert _stored(database_url, run) == (0, 0, 0), name


def test_hostile_bodies_are_quick_400s_and_store_nothing(
    live: LiveServer, run: dict[str, str], database_url: str
) -> None:
    for name in sorted(CASES):
        _check_400(live, run, database_url, name)


def test_duplicate_keys_decode_to_one_value_and_apply_once(
    live: LiveServer, run: dict[str, str], database_url: str
) -> None:
    body = _envelope_prefix(run) + b'"eventId":"e2","messages":[{"type":"assistant","uuid":"m1"}]}'
    response, elapsed = _post(live, run, body)
    # The last value wins (msgspec); either way the answer is documented and applied at most once.
    assert response.status_code in (200, 202, 400), response.text[:300]
    assert elapsed < QUICK
    events, messages, _ = _stored(database_url, run)
    assert events <= 1 and messages <= 1
    again, _ = _post(live, run, body)
    assert _stored(database_url, run)[:2] == (events, messages)
    if response.status_code == 200:
        assert again.json()["status"] == "duplicate"


def test_ten_megabyte_body_is_413_quickly(
    live: LiveServer, run: dict[str, str], database_url: str
) -> None:
    pad = json.dumps("x" * (10 * 1024 * 1024)).encode()
    body = _envelope_prefix(run) + b'"messages":[{"type":"assistant","text":' + pad + b"}]}"
    response, elapsed = _post(live, run, body)
    assert response.status_code == 413
    assert response.json()["status"] == "too_large"
    assert elapsed < QUICK
    assert _stored(database_url, run) == (0, 0, 0)


def test_slow_loris_bodies_do_not_block_others_and_store_nothing(
    live: LiveServer, run: dict[str, str], database_url: str
) -> None:
    async def scenario() -> float:
        port = int(live.url.rsplit(":", 1)[1])
        body = _envelope_prefix(run) + b'"messages":[]}'
        writers = []
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /api/daemon-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"X-Daemon-Token: {run['token']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            await writer.drain()
            writers.append(writer)
        async with httpx.AsyncClient(timeout=10) as client:
            started = time.monotonic()
            response = await client.get(live.url + "/healthz")
            elapsed = time.monotonic() - started
        assert response.status_code == 200
        for writer in writers:
            writer.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < QUICK
    assert _stored(database_url, run) == (0, 0, 0)
