"""Helpers for the daemon-event tests (no tests here): start runs, build and post envelopes,
read run state and quarantine rows. Runs are started over HTTP with the `manual` provider.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from tests.support import thread_body

CHAT = "chat-1"

APPLY_SQL = """
SELECT outcome, applied_messages FROM terragon_ingest_envelope(
    p_token_hash => NULL, p_token_run_id => %(run)s, p_thread_id => 'thread-1',
    p_thread_chat_id => 'chat-1', p_run_id => %(run)s, p_dedupe_id => %(event)s, p_seq => %(seq)s,
    p_payload_version => 2::smallint, p_fields_valid => true, p_within_limits => true,
    p_messages => %(messages)s::jsonb, p_trace_id => 'trace', p_terminal => false,
    p_failure => false, p_end_sha => NULL, p_inputs_ready => false, p_diff_source => NULL,
    p_diff_source_context => NULL, p_legacy_row => NULL, p_ui_outcome => NULL,
    p_ui_blocking_reason => NULL)
"""
"""One ordinary v2 envelope straight through the decision (named arguments), for the tests that
count what a single apply reads or writes in PostgreSQL."""


def messages_json(*uuids: str) -> str:
    """A `messages` array (JSON text), one assistant message per uuid."""
    return json.dumps([{"type": "assistant", "uuid": u, "message": {"text": u}} for u in uuids])


async def set_strict(client, enabled: bool) -> None:
    response = await client.put("/api/internal/flags/daemonRunIdStrict", json={"enabled": enabled})
    assert response.status_code == 200, response.text


async def start_run(
    client, *, thread_id: str = "thread-1", chat: str = CHAT, request_id: str | None = None
) -> tuple[str, str]:
    """Register the thread (manual provider), start a run; return (runId, daemon token)."""
    response = await client.post("/api/internal/threads", json=thread_body(thread_id))
    assert response.status_code == 201, response.text
    response = await client.post(
        "/api/internal/runs/start",
        json={
            "threadId": thread_id,
            "threadChatId": chat,
            "startRequestId": request_id or uuid.uuid4().hex,
            "triggerSource": "ui",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["runId"], body["daemonMessage"]["token"]


def envelope(
    run_id: str | None,
    seq: int | None = 1,
    *,
    event_id: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    thread_id: str = "thread-1",
    chat: str = CHAT,
    version: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threadId": thread_id,
        "threadChatId": chat,
        "payloadVersion": version,
        "messages": messages if messages is not None else [{"type": "assistant", "text": "hi"}],
    }
    if run_id is not None:
        body["runId"] = run_id
    if seq is not None:
        body["seq"] = seq
    if version == 2 and event_id is None:
        event_id = f"evt-{seq}"
    if event_id is not None:
        body["eventId"] = event_id
    body.update(extra)
    return body


def legacy_envelope(messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return envelope(None, None, version=1, messages=messages, **extra)


async def post(client, body: dict[str, Any] | bytes, token: str | None, **headers: str):
    all_headers = dict(headers)
    if token is not None:
        all_headers["X-Daemon-Token"] = token
    if isinstance(body, bytes):
        all_headers.setdefault("Content-Type", "application/json")
        return await client.post("/api/daemon-event", content=body, headers=all_headers)
    return await client.post("/api/daemon-event", json=body, headers=all_headers)


async def run_state(client, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/internal/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def quarantine_rows(client, **filters: str) -> list[dict[str, Any]]:
    response = await client.get("/api/internal/quarantine", params=filters)
    assert response.status_code == 200, response.text
    return response.json()


async def sql(database_url: str, query: LiteralString, params: Any = None) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params)
        return await cur.fetchall() if cur.description else []


MUTABLE_RUN_FIELDS = (
    "status",
    "daemonPayloadVersion",
    "lastAcceptedSeq",
    "runEndSha",
    "diffSource",
    "diffSourceContext",
    "terminalEventId",
    "acceptedEventCount",
    "acceptedMessageCount",
    "endedAt",
    "finishReason",
)


def run_facts(run: dict[str, Any]) -> dict[str, Any]:
    """The run fields an envelope can change: compare before/after to prove "no mutation"."""
    return {k: run.get(k) for k in MUTABLE_RUN_FIELDS}
