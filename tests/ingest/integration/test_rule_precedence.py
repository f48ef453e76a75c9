"""The precedence matrix of CONTRACT §4: for every pair of rules that can fire together, an envelope
that breaks both, and the assertion that the earlier rule decides. Order: token → body shape →
runId → field limits → payload version → v2 fields → duplicate eventId → seq → terminal endSha.

(field limits, v2 fields) is the one pair left out: both answer `invalid_envelope`, so which one
decided cannot be seen from outside.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.ingest.integration.test_daemon_event_support import envelope, post, start_run

Body = dict[str, Any]

RULES = ["token", "shape", "run_id", "limits", "version", "fields", "duplicate", "seq", "end_sha"]

ANSWER: dict[str, tuple[int, str, str | None]] = {
    "token": (401, "unauthorized", None),
    "shape": (400, "invalid", None),
    "run_id": (202, "quarantined", "mismatch"),
    "limits": (202, "quarantined", "invalid_envelope"),
    "version": (202, "quarantined", "payload_version_mismatch"),
    "fields": (202, "quarantined", "invalid_envelope"),
    "duplicate": (202, "duplicate", None),
    "seq": (202, "stale_seq", None),
    "end_sha": (202, "quarantined", "missing_end_sha"),
}


def _breakers(run_version: int) -> dict[str, Callable[[Body], None]]:
    """How each rule is broken. The run has accepted eventId `seen` at seq 5 with payload version
    `run_version`; the envelope is v2 (so that it can break the v2-only rules 5 and 8): against a
    v1 run, v2 itself breaks rule 4, against a v2 run the envelope turns v1."""

    def version(body: Body) -> None:
        if run_version == 2:
            body["payloadVersion"] = 1

    def fields(body: Body) -> None:
        body["seq"] = 0  # "a positive integer seq": keeps eventId, so `duplicate` can break too

    return {
        "token": lambda body: None,  # the token is swapped in `_send`
        "shape": lambda body: body.update(messages="not a list"),
        "run_id": lambda body: body.update(runId="another-run"),
        "limits": lambda body: body["messages"].append({"type": "assistant", "uuid": "u" * 129}),
        "version": version,
        "fields": fields,
        "duplicate": lambda body: body.update(eventId="seen"),
        "seq": lambda body: body.update(seq=3),
        "end_sha": lambda body: body["messages"].append({"type": "result"}),
    }


PAIRS = [
    (a, b)
    for a, b in itertools.combinations(RULES, 2)
    if (a, b) != ("limits", "fields")
    # a v1 envelope cannot break the v2-only rules: those pairs run against a v1 run instead
]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}>{b}" for a, b in PAIRS])
async def test_the_earlier_rule_decides(client, first: str, second: str) -> None:
    v2_only = {"fields", "end_sha"}
    run_version = 1 if "version" in (first, second) and v2_only & {first, second} else 2
    run_id, token = await start_run(client)
    seed = envelope(run_id, 5, event_id="seen", version=run_version)
    response = await post(client, seed, token)
    assert response.status_code == 200, response.text

    body = envelope(run_id, 6, event_id="fresh", messages=[{"type": "assistant", "text": "x"}])
    breakers = _breakers(run_version)
    for rule in (second, first):  # the earlier rule last: `shape` replaces the messages list
        breakers[rule](body)
    response = await post(client, body, "tdt_unknown" if "token" in (first, second) else token)
    status, ack, reason = ANSWER[first]
    assert response.status_code == status, response.text
    assert response.json()["status"] == ack
    assert response.json().get("reason") == reason


@pytest.mark.parametrize("rule", RULES)
async def test_each_rule_alone_gives_its_answer(client, rule: str) -> None:
    """The matrix's premise: each breaker on its own triggers exactly its rule."""
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 5, event_id="seen"), token)).status_code == 200
    body = envelope(run_id, 6, event_id="fresh", messages=[{"type": "assistant", "text": "x"}])
    _breakers(2)[rule](body)
    response = await post(client, body, "tdt_unknown" if rule == "token" else token)
    status, ack, reason = ANSWER[rule]
    assert (response.status_code, response.json()["status"]) == (status, ack), response.text
    assert response.json().get("reason") == reason
