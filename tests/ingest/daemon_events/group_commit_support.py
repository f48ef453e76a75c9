"""What the group-commit tests share: a group commit with one statement in flight, so that
everything submitted in one turn of the event loop forms one batch (deterministic, no timing),
and envelopes decided concurrently through it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import psycopg
import pytest

from terragon_core import decode_envelope
from terragon_ingest.daemon_events.group_commit import GroupCommit
from terragon_ingest.daemon_events.service import Delivery, decide
from terragon_ingest.runs.tokens import hash_token
from tests.fixtures.daemon_events import sql


@pytest.fixture(name="group")
def fx_group(app, client) -> GroupCommit:
    group = GroupCommit(app.state.daemon_events.pool, max_batch=32, max_in_flight=1)
    app.state.daemon_events = dataclasses.replace(app.state.daemon_events, group_commit=group)
    return group


async def decide_all(app, items: list[tuple[dict[str, Any], str]]) -> list[Any]:
    """Decide the envelopes concurrently, submitted in the order given."""

    async def one(body: dict[str, Any], token: str):
        raw = json.dumps(body).encode()
        delivery = Delivery(decode_envelope(raw), raw, "trace", token_hash=hash_token(token))
        return await decide(app.state.daemon_events, delivery)

    return await asyncio.gather(
        *(one(body, token) for body, token in items), return_exceptions=True
    )


async def statements_waiting_on_a_lock(database_url: str) -> int:
    """Decision statements (any connection) waiting on a lock right now."""
    rows = await sql(
        database_url,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%%terragon_ingest_envelope%%'",
    )
    return int(rows[0]["n"])


async def hold_run(blocker: psycopg.AsyncConnection[Any], run_id: str) -> None:
    """Another transaction holds `run_id`'s row (as a statement applying one of its envelopes
    does) until `blocker` commits: a statement that may apply an envelope of it waits."""
    await blocker.execute("SELECT 1 FROM thread_run WHERE run_id = %s FOR UPDATE", (run_id,))
