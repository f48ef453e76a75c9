"""The daemon-event hot path costs one statement (one round trip, one pooled connection): applied,
duplicate and stale envelopes are decided by `terragon_ingest_envelope` alone once the process
knows the token (its first envelope costs one token lookup more, before the body is decoded); an
unknown token costs that one lookup and nothing else."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.fixtures.daemon_events import envelope, post
from tests.fixtures.runs import start_run


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.checkouts = 0


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter()
    execute = psycopg.AsyncCursor.execute
    getconn = AsyncConnectionPool.getconn

    async def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counter.statements.append(str(query))
        return await execute(self, query, *args, **kwargs)

    async def counting_getconn(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.checkouts += 1
        return await getconn(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counting_execute)
    monkeypatch.setattr(AsyncConnectionPool, "getconn", counting_getconn)
    return counter


async def _one_statement(client, counted: Counter, body: dict[str, Any], token: str) -> str:
    counted.statements.clear()
    counted.checkouts = 0
    response = await post(client, body, token)
    assert len(counted.statements) == 1, counted.statements
    assert "terragon_ingest_envelope" in counted.statements[0]
    assert counted.checkouts == 1
    return response.json()["status"]


async def test_applied_duplicate_and_stale_cost_one_statement(client, counted: Counter) -> None:
    run_id, token = await start_run(client)
    counted.statements.clear()
    response = await post(client, envelope(run_id, 1, event_id="first"), token)
    assert response.json()["status"] == "applied"
    assert len(counted.statements) == 2  # the token, before decoding; then the one statement
    assert "daemon_token" in counted.statements[0]
    assert "terragon_ingest_envelope" in counted.statements[1]
    assert await _one_statement(client, counted, envelope(run_id, 2), token) == "applied"
    # the same eventId again, then an older seq with a new eventId
    assert await _one_statement(client, counted, envelope(run_id, 3, event_id="evt-2"), token) == (
        "duplicate"
    )
    assert await _one_statement(client, counted, envelope(run_id, 1, event_id="x"), token) == (
        "stale_seq"
    )


async def test_unknown_token_costs_one_lookup_and_no_token_none(client, counted: Counter) -> None:
    run_id, _ = await start_run(client)
    counted.statements.clear()
    response = await post(client, envelope(run_id, 1), "tdt_unknown")
    assert response.json()["status"] == "unauthorized"
    assert len(counted.statements) == 1 and "daemon_token" in counted.statements[0]
    counted.statements.clear()
    response = await post(client, envelope(run_id, 1), "")
    assert response.status_code == 401
    assert counted.statements == []


async def test_unstorable_messages_are_decided_again_without_them(client, counted: Counter) -> None:
    """A `\\u0000` escape cannot be stored as jsonb: the one statement fails to bind, and the
    same decision asked again without the messages quarantines the envelope as
    `invalid_envelope` (nothing applied)."""
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, messages=[{"type": "assistant", "text": "nul \u0000 here"}])
    counted.statements.clear()
    response = await post(client, body, token)
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["reason"]) == (
        "quarantined",
        "invalid_envelope",
    )
    assert "terragon_ingest_envelope" in counted.statements[1]  # after the token lookup
    assert len(counted.statements) > 1
