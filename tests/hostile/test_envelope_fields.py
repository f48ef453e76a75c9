"""Hostile envelope fields (CONTRACT §4 field limits): every one gets a final answer, again on
retry, and none becomes a 5xx or leaks database text. Before this, a 10 KB random `eventId` or
message `uuid` was a 503 forever ("index row requires 10056 bytes") and `seq = 2^70` a 503
(`UndefinedFunction`): a daemon retries a 503, so its run was stuck.

Random strings on purpose: a repetitive one compresses below PostgreSQL's index-row limit.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.fixtures.daemon_events import envelope, post, quarantine_rows, run_facts, run_state
from tests.fixtures.runs import start_run

LEAKS = ("index row", "psycopg", "bigint", "function", "sqlstate", "postgres", "UndefinedFunction")


def _random(chars: int) -> str:
    return secrets.token_hex(chars // 2 + 1)[:chars]


def _assert_no_internals(text: str) -> None:
    lowered = text.lower()
    for leak in LEAKS:
        assert leak.lower() not in lowered, text


HOSTILE: dict[str, Any] = {
    "eventId 10 KB": lambda run_id: envelope(run_id, 1, event_id=_random(10_000)),
    "eventId 129": lambda run_id: envelope(run_id, 1, event_id=_random(129)),
    "message uuid 10 KB": lambda run_id: envelope(
        run_id, 1, messages=[{"type": "assistant", "uuid": _random(10_000)}]
    ),
    "seq 2^70": lambda run_id: envelope(run_id, 2**70),
    "seq 2^63": lambda run_id: envelope(run_id, 2**63),
    "endSha 10 KB on a terminal": lambda run_id: envelope(
        run_id, 1, messages=[{"type": "result"}], endSha=_random(10_000)
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_over_limit_fields_are_quarantined_invalid_envelope_again_on_retry(
    client, case: str
) -> None:
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    body = HOSTILE[case](run_id)
    for _attempt in range(2):  # the daemon's retry gets the same final answer
        response = await post(client, body, token)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "quarantined"
        assert response.json()["reason"] == "invalid_envelope"
        _assert_no_internals(response.text)
    assert run_facts(await run_state(client, run_id)) == before
    rows = await quarantine_rows(client, runId=run_id, reason="invalid_envelope")
    assert len(rows) == 2
    assert all(r["payloadSize"] > 0 and len(r["payloadHash"]) == 64 for r in rows)
    # the run is not wedged: the next well-formed envelope applies
    response = await post(client, envelope(run_id, 1), token)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"


async def test_fields_at_their_limits_apply(client) -> None:
    run_id, token = await start_run(client)
    body = envelope(
        run_id,
        2**63 - 1,
        event_id=_random(128),
        messages=[{"type": "assistant", "uuid": _random(128)}],
    )
    response = await post(client, body, token)
    assert response.status_code == 200, response.text
    assert response.json()["lastAcceptedSeq"] == 2**63 - 1


@pytest.mark.parametrize("field", ["threadId", "threadChatId", "runId"])
async def test_identifiers_over_256_characters_are_a_400(client, field: str) -> None:
    run_id, token = await start_run(client)
    body = envelope(run_id, 1)
    body[field] = _random(257)
    response = await post(client, body, token)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "invalid"
    assert any(field in e for e in response.json()["errors"])
    _assert_no_internals(response.text)
    assert await quarantine_rows(client, runId=run_id) == []


async def test_a_legacy_envelope_with_a_hostile_uuid_is_not_applied(client) -> None:
    """Under strict=false a runId-less envelope is applied to the active run: a hostile uuid must
    be stopped before that apply binds it."""
    run_id, token = await start_run(client)
    body = envelope(
        None, None, version=1, messages=[{"type": "assistant", "uuid": _random(10_000)}]
    )
    response = await post(client, body, token)
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == "invalid_envelope"
    assert (await run_state(client, run_id))["acceptedMessageCount"] == 0


@pytest.mark.parametrize("field", ["threadId", "threadChatId", "runId"])
async def test_a_nul_in_an_identifier_is_a_400_again_on_retry(client, field: str) -> None:
    """PostgreSQL text cannot hold a NUL: bound as a parameter it fails every time, so it must be
    refused before any SQL (a 5xx would have the daemon retry it forever)."""
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    body = envelope(run_id, 1)
    body[field] = f"{body[field]}\u0000x"
    for _attempt in range(2):
        response = await post(client, body, token)
        assert response.status_code == 400, response.text
        assert response.json()["status"] == "invalid"
        assert any(field in e for e in response.json()["errors"]), response.text
        _assert_no_internals(response.text)
    assert run_facts(await run_state(client, run_id)) == before
    # the run is not wedged: the same envelope without the NUL applies
    response = await post(client, envelope(run_id, 1), token)
    assert response.status_code == 200, response.text


async def test_a_nul_in_the_timezone_is_not_stored_and_applies_once(client) -> None:
    """`timezone` is carried, never stored or bound: a NUL in it changes nothing."""
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, timezone="UTC\u0000x")
    answers = [(await post(client, body, token)).json()["status"] for _ in range(2)]
    assert answers == ["applied", "duplicate"]


@pytest.mark.parametrize(
    "kind",
    [["result"], {"result": True}, 7, None, True],
    ids=["list", "object", "int", "null", "bool"],
)
async def test_a_message_type_that_is_not_a_string_is_an_ordinary_message(
    client, kind: Any
) -> None:
    """A message's `type` is the agent's: a list or an object there (unhashable) once made the
    terminal check raise, a 500 the daemon retried forever. It is just not a terminal message:
    the envelope applies, once, and the run stays live."""
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, messages=[{"type": kind, "uuid": "m-1"}, {"type": "assistant"}])
    answers = []
    for _attempt in range(2):
        response = await post(client, body, token)
        _assert_no_internals(response.text)
        answers.append((response.status_code, response.json()["status"]))
    assert answers == [(200, "applied"), (202, "duplicate")]
    state = await run_state(client, run_id)
    assert (state["status"], state["acceptedMessageCount"]) == ("running", 2)
