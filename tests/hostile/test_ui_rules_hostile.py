"""UI rules are untrusted input (CONTRACT §4): hostile globs in the checkout's
`.terragon/preview-validation.json` are answered quickly and correctly, and the service keeps
answering `/healthz` (under 1 s) while the terminal envelope is being decided.

The backtracking glob `*a*a*…*b` does not match a file named with 240 `a`s, so the honest answer
there is `not_required` (the issue text says `inconclusive`); with a trailing `b` it matches and
the answer is `inconclusive`. Both used to hold the event loop forever.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from terragon_core import UI_MATCH_DEADLINE_SECONDS, UI_RULES_PATH
from tests.fixtures.live_server import LiveServer
from tests.fixtures.sandbox import (
    QUICK,
    commit_all,
    decide_while_polling_healthz,
    live_service,
    make_checkout,
    start_local_run,
    ui_validation,
    write,
)

BACKTRACKING = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"
BRACE_BOMB = "{a,b}" * 26  # 2^26 = 67 M alternatives if expanded
DEEP = "**/" * 80 + "x.tsx"  # 245 characters; `(?:.*/)?` 80 times as a regex


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    with live_service(settings) as server:
        yield server


def _decide(
    live: LiveServer, tmp_path: Path, rules: dict, changed: list[str]
) -> tuple[dict, float]:
    """Commit `rules`, start a run, write `changed`, post the legacy terminal envelope while
    polling /healthz; return the UI validation read-out and the seconds the envelope took."""
    repo = make_checkout(tmp_path / "sandbox")
    write(repo, UI_RULES_PATH, json.dumps(rules))
    commit_all(repo, "rules")
    started = start_local_run(live, repo)
    for path in changed:
        write(repo, path)
    response, seconds, latencies = decide_while_polling_healthz(
        live, started["daemonMessage"]["token"]
    )
    assert response.status_code == 200, response.text
    assert seconds < QUICK, f"decided in {seconds:.2f} s"
    assert max(latencies) < 1.0
    print(f"decided in {seconds:.3f} s; /healthz x{len(latencies)}, max {max(latencies):.3f} s")
    return ui_validation(live), seconds


@pytest.mark.parametrize(
    ("glob", "changed", "outcome"),
    [
        (BACKTRACKING, "a" * 240, "not_required"),
        (BACKTRACKING, "a" * 240 + "b", "inconclusive"),
        (DEEP, "a/" * 100 + "y.tsx", "not_required"),
        (DEEP, "a/" * 100 + "x.tsx", "inconclusive"),
    ],
    ids=["backtracking-no-match", "backtracking-match", "deep-no-match", "deep-match"],
)
def test_pathological_globs_are_decided_quickly_and_correctly(
    live: LiveServer, tmp_path: Path, glob: str, changed: str, outcome: str
) -> None:
    body, _ = _decide(live, tmp_path, {"schemaVersion": 1, "uiRules": [glob]}, [changed])
    assert (body["uiValidationOutcome"], body["blockingReason"]) == (outcome, None)


@pytest.mark.parametrize(
    "rules",
    [
        {"schemaVersion": 1, "uiRules": [BRACE_BOMB]},
        {"schemaVersion": 1, "uiRules": ["src/[z-a].tsx"]},
        {"schemaVersion": 1, "uiRules": ["*.tsx"], "excludes": ["[!]"]},
        {"schemaVersion": 1, "uiRules": ["*.tsx"] * 101},
        {"schemaVersion": 1, "uiRules": ["a" * 257]},
        {"schemaVersion": 1, "uiRules": ["{" * 200 + "}" * 40]},
    ],
    ids=[
        "brace-bomb",
        "reversed-range",
        "empty-negated-class",
        "101-globs",
        "257-chars",
        "unbalanced",
    ],
)
def test_hostile_rules_are_ui_rules_invalid_quickly(
    live: LiveServer, tmp_path: Path, rules: dict
) -> None:
    body, _ = _decide(live, tmp_path, rules, ["src/App.tsx"])
    assert (body["uiValidationOutcome"], body["blockingReason"]) == (
        "inconclusive",
        "ui_rules_invalid",
    )


def test_the_heaviest_legal_rules_end_at_the_deadline_while_healthz_answers(
    live: LiveServer, tmp_path: Path
) -> None:
    """Legal input, as much work as the limits allow: 100 globs of 256 characters (`*x*y*z…`
    over 8 letters) against 300 changed files named with 200 of those letters — each new
    character a new automaton state, ~0.3 s a path, ~90 s in all. The decision stops at the
    match deadline with `inconclusive` (unknown is not "no UI"), and /healthz on the same
    server answers in under 1 s the whole time it runs."""
    rng = random.Random(7)
    globs = ["".join("*" + rng.choice("abcdefgh") for _ in range(128)) for _ in range(100)]
    changed = ["".join(rng.choice("abcdefgh") for _ in range(200)) for _ in range(300)]
    body, seconds = _decide(live, tmp_path, {"schemaVersion": 1, "uiRules": globs}, changed)
    assert (body["uiValidationOutcome"], body["blockingReason"]) == ("inconclusive", None)
    assert seconds > UI_MATCH_DEADLINE_SECONDS  # it did work until the deadline
