"""The precedence matrix of CONTRACT §4: for every pair of rules that can fire together, an envelope
that breaks both, and the assertion that the earlier rule decides. Order: token → body shape →
runId (a runId that is not the active run's; the active run's, sent with another run's token) →
field limits → payload version → v2 fields → duplicate eventId → seq → terminal endSha.

(field limits, v2 fields) and (run_id, token_run) are left out: each pair answers alike, so which
one decided cannot be seen from outside.

Then the runId rule's end: nothing is applied to an ended run, whatever later rule the envelope
also breaks; only what repeats an accepted envelope keeps its answer (`duplicate`, `stale_seq`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.daemon_events import envelope, post, run_facts, run_state
from tests.fixtures.runs import start_run

Body = dict[str, Any]

RULES = [
    "token",
    "shape",
    "run_id",
    "token_run",
    "limits",
    "version",
    "fields",
    "duplicate",
    "seq",
    "end_sha",
]

ANSWER: dict[str, tuple[int, str, str | None]] = {
    "token": (401, "unauthorized", None),
    "shape": (400, "invalid", None),
    "run_id": (202, "quarantined", "mismatch"),
    "token_run": (202, "quarantined", "mismatch"),
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
        "token": lambda body: None,  # the tokens are swapped in `_token`
        "token_run": lambda body: None,
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
    if (a, b) not in {("limits", "fields"), ("run_id", "token_run")}
    # a v1 envelope cannot break the v2-only rules: those pairs run against a v1 run instead
]


async def _start(client, broken: set[str]) -> tuple[str, str, str]:
    """Start the run under test: (runId, its token, the token to send): an unknown one to break
    `token`, the token of a run it superseded (same thread and chat) to break `token_run`."""
    superseded_token = (await start_run(client))[1] if "token_run" in broken else None
    run_id, token = await start_run(client)
    if "token" in broken:
        return run_id, token, "tdt_unknown"
    return run_id, token, superseded_token or token


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}>{b}" for a, b in PAIRS])
async def test_the_earlier_rule_decides(client, first: str, second: str) -> None:
    v2_only = {"fields", "end_sha"}
    run_version = 1 if "version" in (first, second) and v2_only & {first, second} else 2
    run_id, token, sent = await _start(client, {first, second})
    seed = envelope(run_id, 5, event_id="seen", version=run_version)
    response = await post(client, seed, token)
    assert response.status_code == 200, response.text

    body = envelope(run_id, 6, event_id="fresh", messages=[{"type": "assistant", "text": "x"}])
    breakers = _breakers(run_version)
    for rule in (second, first):  # the earlier rule last: `shape` replaces the messages list
        breakers[rule](body)
    response = await post(client, body, sent)
    status, ack, reason = ANSWER[first]
    assert response.status_code == status, response.text
    assert response.json()["status"] == ack
    assert response.json().get("reason") == reason


@pytest.mark.parametrize("rule", RULES)
async def test_each_rule_alone_gives_its_answer(client, rule: str) -> None:
    """The matrix's premise: each breaker on its own triggers exactly its rule."""
    run_id, token, sent = await _start(client, {rule})
    assert (await post(client, envelope(run_id, 5, event_id="seen"), token)).status_code == 200
    body = envelope(run_id, 6, event_id="fresh", messages=[{"type": "assistant", "text": "x"}])
    _breakers(2)[rule](body)
    response = await post(client, body, sent)
    status, ack, reason = ANSWER[rule]
    assert (response.status_code, response.json()["status"]) == (status, ack), response.text
    assert response.json().get("reason") == reason


ENDED_RULES = [r for r in RULES if r != "token_run"] + ["none"]


@pytest.mark.parametrize("rule", ENDED_RULES)
async def test_an_ended_run_answers_only_what_repeats_it(client, rule: str) -> None:
    """The run ended with its terminal envelope (`seen`, seq 5). Rules before runId keep their
    answer; of the later ones only `duplicate` and `seq` (a repeat of what it accepted) do; any
    other envelope for it is `mismatch`, never applied, whichever later rule it also breaks."""
    run_id, token, sent = await _start(client, {rule})
    terminal = [{"type": "result", "is_error": False}]
    seed = envelope(run_id, 5, event_id="seen", messages=terminal, endSha="a" * 40)
    assert (await post(client, seed, token)).status_code == 200
    assert (await run_state(client, run_id))["status"] == "finished"
    before = run_facts(await run_state(client, run_id))

    body = envelope(run_id, 6, event_id="fresh", messages=[{"type": "assistant", "text": "x"}])
    if rule != "none":
        _breakers(2)[rule](body)
    response = await post(client, body, sent)
    keeps_its_answer = rule in {"token", "shape", "duplicate", "seq"}
    status, ack, reason = ANSWER[rule] if keeps_its_answer else ANSWER["run_id"]
    assert (response.status_code, response.json()["status"]) == (status, ack), response.text
    assert response.json().get("reason") == reason
    assert run_facts(await run_state(client, run_id)) == before
