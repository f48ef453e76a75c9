"""One tenant cannot starve another (CONTRACT §4 "Budgets"). Before these, one daemon token could
send 90k-message envelopes without limit, its statements held both of a worker's in-flight
group-commit slots, and a statement could run for minutes: another run's 1-message envelope went
from 18 ms to 2 s.

Each test fails on the code before the budgets: no 429, no quarantine for a too-big envelope, a
run's second envelope taking the second slot, a blocked statement never answered."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from terragon_core import MetricName, run_budget_key
from terragon_ingest.daemon_events import service
from terragon_ingest.daemon_events.budgets import WINDOW_SECONDS, RunBudgets
from terragon_ingest.daemon_events.group_commit import GroupCommit
from tests.conftest import INTERNAL_TOKEN
from tests.daemon_bundle.support import (
    FAST_FLAGS,
    DaemonProcess,
    agent_command,
    make_git_repo,
    start_message,
)
from tests.fixtures.daemon_events import envelope, post, quarantine_rows, run_state, sql
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.runs import CHAT, start_run
from tests.fixtures.settings import settings_for
from tests.fixtures.waiting import until

MAX_MESSAGES = 5
MAX_BYTES = 4000
WINDOW = 29_000_000  # an epoch minute; the clock is moved by hand


class Clock:
    def __init__(self) -> None:
        self.now = WINDOW * WINDOW_SECONDS + 20.5  # 39.5 s before the window ends

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="statement_timeout")
def fx_statement_timeout() -> float:
    return 10.0


@pytest.fixture(name="settings")
def fx_settings(database_url: str, valkey_url: str, tmp_path, statement_timeout: float):
    base = settings_for(database_url, valkey_url, tmp_path)
    return dataclasses.replace(
        base,
        db=dataclasses.replace(base.db, STATEMENT_TIMEOUT=statement_timeout),
        correlation=dataclasses.replace(
            base.correlation,
            RUN_MAX_MESSAGES_PER_MINUTE=MAX_MESSAGES,
            RUN_MAX_BYTES_PER_MINUTE=MAX_BYTES,
        ),
    )


@pytest.fixture(name="clock")
def fx_clock(app, client) -> Clock:
    """The app's budgets, on a clock the test moves (no window may end mid-test)."""
    clock = Clock()
    deps = app.state.daemon_events
    old = deps.budgets
    assert old is not None, "the service accounts per-run budgets"
    budgets = RunBudgets(
        max_messages=old.max_messages,
        max_bytes=old.max_bytes,
        valkey=deps.valkey,
        metrics=deps.metrics,
        clock=clock,
    )
    app.state.daemon_events = dataclasses.replace(deps, budgets=budgets)
    return clock


@pytest.fixture(name="decodes")
def fx_decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    decode = service.decode_envelope

    def recording(body: bytes):
        seen.append(body)
        return decode(body)

    monkeypatch.setattr(service, "decode_envelope", recording)
    return seen


def _messages(n: int, tag: str = "m") -> list[dict[str, Any]]:
    return [{"type": "assistant", "uuid": f"{tag}-{i}", "text": "x"} for i in range(n)]


async def _stored(database_url: str) -> int:
    rows = await sql(database_url, "SELECT count(*) AS n FROM daemon_event")
    return rows[0]["n"]


async def test_over_the_message_budget_is_429_with_retry_after_and_nothing_stored(
    client, clock: Clock, database_url: str, decodes: list[bytes]
) -> None:
    run_id, token = await start_run(client)
    for seq in (1, 2):
        body = envelope(run_id, seq, messages=_messages(2, f"s{seq}"))
        assert (await post(client, body, token)).status_code == 200
    over = envelope(run_id, 3, messages=_messages(2, "s3"))  # 6 > 5 messages this minute
    response = await post(client, over, token)
    assert response.status_code == 429, response.text
    assert response.json()["status"] == "rate_limited"
    assert response.headers["Retry-After"] == "40"  # the window's end
    assert await _stored(database_url) == 2
    assert await quarantine_rows(client, runId=run_id) == []
    # The window's end: the same envelope fits, and is applied once.
    clock.now += 40
    response = await post(client, over, token)
    assert response.status_code == 200, response.text
    assert response.json()["appliedMessages"] == 2


async def test_a_spent_run_is_answered_before_its_body_is_decoded(
    client, clock: Clock, decodes: list[bytes]
) -> None:
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, messages=_messages(MAX_MESSAGES))
    assert (await post(client, body, token)).status_code == 200
    decodes.clear()
    response = await post(client, envelope(run_id, 2), token)
    assert response.status_code == 429, response.text
    assert decodes == []  # refused from the token and the run's usage alone


async def test_over_the_byte_budget_is_429(client, clock: Clock, database_url: str) -> None:
    run_id, token = await start_run(client)
    padding = "p" * 2500
    first = envelope(run_id, 1, messages=[{"type": "assistant", "uuid": "b1", "text": padding}])
    assert (await post(client, first, token)).status_code == 200
    second = envelope(run_id, 2, messages=[{"type": "assistant", "uuid": "b2", "text": padding}])
    response = await post(client, second, token)
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert await _stored(database_url) == 1


async def test_an_envelope_over_a_budget_alone_is_quarantined_not_retried_forever(
    client, clock: Clock, database_url: str
) -> None:
    run_id, token = await start_run(client)
    response = await post(client, envelope(run_id, 1, messages=_messages(MAX_MESSAGES + 1)), token)
    assert response.status_code == 202, response.text
    assert response.json() == {
        **response.json(),
        "status": "quarantined",
        "reason": "invalid_envelope",
    }
    assert await _stored(database_url) == 0
    rows = await quarantine_rows(client, runId=run_id)
    assert [r["reason"] for r in rows] == ["invalid_envelope"]


async def test_another_run_is_unaffected_by_a_spent_run(client, clock: Clock) -> None:
    spent_run, spent_token = await start_run(client, thread_id="t-spent")
    other_run, other_token = await start_run(client, thread_id="t-other")
    body = envelope(spent_run, 1, thread_id="t-spent", messages=_messages(MAX_MESSAGES))
    assert (await post(client, body, spent_token)).status_code == 200
    assert (
        await post(client, envelope(spent_run, 2, thread_id="t-spent"), spent_token)
    ).status_code == 429
    response = await post(client, envelope(other_run, 1, thread_id="t-other"), other_token)
    assert response.status_code == 200, response.text


async def test_with_valkey_down_the_budget_is_still_decided(
    app, client, clock: Clock, database_url: str
) -> None:
    import valkey.asyncio as valkey_asyncio

    deps = app.state.daemon_events
    down = valkey_asyncio.from_url(
        "redis://127.0.0.1:9", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    budgets = RunBudgets(
        max_messages=MAX_MESSAGES,
        max_bytes=MAX_BYTES,
        valkey=down,
        metrics=deps.metrics,
        clock=clock,
    )
    app.state.daemon_events = dataclasses.replace(deps, budgets=budgets)
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, messages=_messages(4))
    assert (await post(client, body, token)).status_code == 200
    assert await budgets.sync_once() is False
    assert (
        deps.metrics.value(MetricName.BUDGET_SYNC_FAILURE, repo="", user="", provider="", reason="")
        >= 1
    )
    response = await post(client, envelope(run_id, 2, messages=_messages(2, "b")), token)
    assert response.status_code == 429, response.text
    assert (
        await post(client, envelope(run_id, 2, messages=_messages(1, "c")), token)
    ).status_code == 200
    assert await _stored(database_url) == 2
    await down.aclose()


async def test_workers_share_one_budget_through_valkey(valkey_url: str) -> None:
    """Two workers' accounting of one run: after a sync each sees the other's usage."""
    import valkey.asyncio as valkey_asyncio

    client = valkey_asyncio.from_url(valkey_url)
    clock = Clock()

    def worker() -> RunBudgets:
        return RunBudgets(
            max_messages=MAX_MESSAGES, max_bytes=MAX_BYTES, valkey=client, clock=clock
        )

    one, two = worker(), worker()
    assert one.admit("run-x", 3, 100) is None
    assert two.admit("run-x", 2, 100) is None
    assert await one.sync_once() and await two.sync_once() and await one.sync_once()
    assert one.admit("run-x", 1, 10) is not None  # 5 of 5 used across both
    assert two.admit("run-x", 1, 10) is not None
    stored: dict[bytes, bytes] = await client.hgetall(run_budget_key("dev", "run-x", WINDOW))  # type: ignore[misc]
    assert {k.decode(): int(v) for k, v in stored.items()} == {"messages": 5, "bytes": 200}
    await client.aclose()


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    """The service under uvicorn: envelopes in flight at once (the test client runs one at a time)."""
    server = LiveServer(settings, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="http")
async def fx_http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture(name="held_thread")
async def fx_held_thread(database_url: str) -> AsyncIterator[Any]:
    """Lock a run's row (the one its ingest statement locks), as a slow statement would hold it;
    `release` (or the end of the test) lets it go."""
    holders: list[psycopg.AsyncConnection[Any]] = []

    async def hold(run_id: str) -> None:
        conn = await psycopg.AsyncConnection.connect(database_url)
        holders.append(conn)
        await conn.execute("SELECT 1 FROM thread_run WHERE run_id = %s FOR UPDATE", (run_id,))

    async def release() -> None:
        for conn in holders:
            await conn.rollback()
            await conn.close()
        holders.clear()

    hold.release = release  # type: ignore[attr-defined]
    yield hold
    await release()


async def test_one_runs_envelopes_never_hold_two_statements(
    live: LiveServer, http: httpx.AsyncClient, held_thread
) -> None:
    """The flooding run's first statement is stuck: its second envelope waits for it, and the
    second slot stays free for another run (before: the second took the last slot, and the other
    run's envelope queued behind both)."""
    assert live.app is not None
    group = live.app.state.daemon_events.group_commit
    assert isinstance(group, GroupCommit)
    flood_run, flood_token = await start_run(http, thread_id="t-flood")
    other_run, other_token = await start_run(http, thread_id="t-victim")
    await held_thread(flood_run)
    stuck = []
    for seq in (1, 2):
        body = envelope(flood_run, seq, thread_id="t-flood")
        stuck.append(asyncio.create_task(post(http, body, flood_token)))
        await until(lambda: sum(group.batch_sizes.values()) == 1, "the first one's statement")
    await until(lambda: group.queued == 1, "the run's second envelope waits for its first")
    async with asyncio.timeout(5):
        response = await post(http, envelope(other_run, 1, thread_id="t-victim"), other_token)
    assert response.status_code == 200, response.text
    assert group.queued == 1
    await held_thread.release()
    assert [(await task).status_code for task in stuck] == [200, 200]  # in order, both applied


@pytest.mark.parametrize("statement_timeout", [1.0])
async def test_a_statement_over_the_timeout_is_503_and_another_run_is_applied(
    http: httpx.AsyncClient, held_thread
) -> None:
    slow_run, slow_token = await start_run(http, thread_id="t-slow")
    other_run, other_token = await start_run(http, thread_id="t-fast")
    await held_thread(slow_run)
    slow_envelope = envelope(slow_run, 1, thread_id="t-slow", messages=_messages(MAX_MESSAGES))
    async with asyncio.timeout(15):  # before: the statement waited for the lock forever
        slow = asyncio.create_task(post(http, slow_envelope, slow_token))
        fast = await post(http, envelope(other_run, 1, thread_id="t-fast"), other_token)
        assert fast.status_code == 200, fast.text
        assert not slow.done()
        slow_answer = await slow
    assert slow_answer.status_code == 503, slow_answer.text
    assert slow_answer.json()["status"] == "unavailable"
    assert "timeout" not in slow_answer.text  # no database text in the answer
    assert slow_answer.headers["Retry-After"]
    await held_thread.release()
    response = await post(http, slow_envelope, slow_token)
    # The daemon's retry is applied: the 503 gave back the budget it was charged (else: 429).
    assert response.status_code == 200, response.text


async def test_a_rate_limited_daemon_loses_nothing(
    live: LiveServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A real daemon against the real service, its run over budget again and again: each 429 is
    waited out (Retry-After) with the same sealed batch, and every agent message is stored once."""
    assert live.app is not None
    deps = live.app.state.daemon_events
    clock = Clock()
    clock.now = WINDOW * WINDOW_SECONDS + 59.5  # Retry-After: 1 s; the test ends each window
    budgets = RunBudgets(max_messages=MAX_MESSAGES, max_bytes=10**6, clock=clock)
    live.app.state.daemon_events = dataclasses.replace(deps, budgets=budgets)
    run_id, token = await start_run(http)
    agent = ["--messages", "8", "--seed", "7", "--no-git"]
    repo = make_git_repo(tmp_path / "checkout")
    start = tmp_path / "start.json"
    message = start_message(live.url, repo, agent, runId=run_id, token=token, threadChatId=CHAT)
    start.write_text(json.dumps(message))
    flags = ["--max-batch-messages", "3", "--max-attempts", "2", "--retry-max-delay", "0.2"]
    spool = ["--spool-dir", str(tmp_path / "spool")]
    daemon = DaemonProcess([*FAST_FLAGS, *flags, *spool, "--start-json", str(start)])
    try:
        limited = 0.0
        async with asyncio.timeout(60):
            while daemon.proc.poll() is None:  # each 429 seen ends the window it was in
                seen = deps.metrics.value(
                    MetricName.ENVELOPE, repo="", user="", provider="", reason="rate_limited"
                )
                if seen > limited:
                    limited = seen
                    clock.now += WINDOW_SECONDS
                await asyncio.sleep(0.05)
        assert daemon.wait() == 0, daemon.log()
    finally:
        daemon.close()
    assert limited >= 2, "the run went over its budget more than once"
    assert "http_status=429" in daemon.log()
    assert "batch_dead_lettered" not in daemon.log()
    produced = await asyncio.to_thread(
        subprocess.run, agent_command(*agent), cwd=tmp_path, capture_output=True, text=True
    )
    assert produced.returncode == 0, produced.stderr
    state = await run_state(http, run_id)
    assert state["acceptedMessageCount"] == len(produced.stdout.splitlines()), daemon.log()
