"""What the group-commit tests share: a group commit with one statement in flight, so that
everything submitted in one turn of the event loop forms one batch (deterministic, no timing),
and envelopes decided concurrently through it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from terragon_core import decode_envelope
from terragon_ingest.daemon_events.group_commit import GroupCommit
from terragon_ingest.daemon_events.service import Delivery, decide
from terragon_ingest.runs.tokens import hash_token


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
