"""Tokens cannot be replayed or outlive their run (CONTRACT §4, the token paragraphs).

Before this, on main: after run A finished its token still wrote into it; an envelope without
`runId` was applied to the finished run; after B superseded A, an envelope with A's token and
`runId=B` was applied into B; nothing expired and no route revoked a token.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from terragon_core import DAEMON_TOKEN_GRACE_SECONDS
from terragon_ingest.settings import get_settings
from tests.fixtures.daemon_events import (
    envelope,
    post,
    quarantine_rows,
    run_facts,
    run_state,
    set_strict,
    sql,
)
from tests.fixtures.processes import invoke_in_process
from tests.fixtures.runs import start_run

TERMINAL = [{"type": "assistant", "text": "done"}, {"type": "result", "is_error": False}]


async def _finished_run(client) -> tuple[str, str, dict[str, Any]]:
    """A run that accepted seq 1 and then its terminal envelope (seq 2): (runId, token, terminal)."""
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    terminal = envelope(run_id, 2, messages=TERMINAL, endSha="a" * 40)
    response = await post(client, terminal, token)
    assert response.status_code == 200, response.text
    assert (await run_state(client, run_id))["status"] == "finished"
    return run_id, token, terminal


async def _event_count(database_url: str) -> int:
    return (await sql(database_url, "SELECT count(*) AS n FROM daemon_event"))[0]["n"]


def _answer(response) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["status"], body.get("reason") or body.get("code")


async def test_a_finished_runs_token_writes_nothing_into_it(client) -> None:
    run_id, token, terminal = await _finished_run(client)
    before = run_facts(await run_state(client, run_id))

    fresh = envelope(run_id, 3, messages=[{"type": "assistant", "uuid": "late"}])
    assert _answer(await post(client, fresh, token)) == (202, "quarantined", "mismatch")
    # what repeats an accepted envelope keeps its final answer
    assert _answer(await post(client, terminal, token)) == (202, "duplicate", None)
    reordered = envelope(run_id, 1, event_id="never-seen")
    assert _answer(await post(client, reordered, token)) == (202, "stale_seq", None)
    # the ended-run rule is the runId rule: it comes before the payload version's
    v1 = envelope(run_id, 3, version=1, event_id="v1-late")
    assert _answer(await post(client, v1, token)) == (202, "quarantined", "mismatch")
    assert run_facts(await run_state(client, run_id)) == before


async def test_an_envelope_without_run_id_is_never_applied_to_a_finished_run(client) -> None:
    await set_strict(client, False)
    run_id, token, _ = await _finished_run(client)
    before = run_facts(await run_state(client, run_id))

    response = await post(client, envelope(None, 3, event_id="no-run-id"), token)
    assert _answer(response) == (202, "quarantined", "mismatch")
    assert run_facts(await run_state(client, run_id)) == before
    [row] = await quarantine_rows(client, reason="mismatch")
    assert (row["runIdOrNull"], row["activeRunId"]) == (None, run_id)


async def test_a_superseded_runs_token_cannot_write_into_the_new_run(client) -> None:
    old_run, old_token = await start_run(client)
    new_run, new_token = await start_run(client)
    before = run_facts(await run_state(client, new_run))

    hijack = envelope(new_run, 1, messages=[{"type": "assistant", "uuid": "hijack"}])
    assert _answer(await post(client, hijack, old_token)) == (202, "quarantined", "mismatch")
    assert run_facts(await run_state(client, new_run)) == before
    [row] = await quarantine_rows(client, reason="mismatch")
    assert (row["runIdOrNull"], row["activeRunId"]) == (new_run, new_run)

    # the new run's own daemon, same body: applied
    assert _answer(await post(client, hijack, new_token)) == (200, "applied", None)
    assert (await run_state(client, old_run))["acceptedEventCount"] == 0


async def test_a_token_expires_one_hour_after_its_run_ended(client, app, database_url: str) -> None:
    run_id, token, terminal = await _finished_run(client)
    set_ended = (
        "UPDATE thread_run SET ended_at = now() - %s * interval '1 second' WHERE run_id = %s"
    )

    await sql(database_url, set_ended, (DAEMON_TOKEN_GRACE_SECONDS - 60, run_id))
    assert _answer(await post(client, terminal, token)) == (202, "duplicate", None)  # late retry

    await sql(database_url, set_ended, (DAEMON_TOKEN_GRACE_SECONDS + 60, run_id))
    stored = await _event_count(database_url)
    for body in (terminal, envelope(run_id, 3)):
        response = await post(client, body, token)
        assert response.json() == {
            "status": "unauthorized",
            "code": "expired",
            "error": response.json()["error"],
        }
        assert response.status_code == 401
    # the token check comes before the body's: no decoding. (An hour on, this process's memory
    # of the token is long gone: an entry lives 60 s.)
    app.state.runs.tokens.forget_thread("thread-1")
    assert _answer(await post(client, b"{not json", token)) == (401, "unauthorized", "expired")
    assert await _event_count(database_url) == stored


async def test_a_superseded_runs_token_expires_an_hour_after_it_was_superseded(
    client, database_url: str
) -> None:
    old_run, old_token = await start_run(client)
    accepted = envelope(old_run, 1)
    assert _answer(await post(client, accepted, old_token)) == (200, "applied", None)
    new_run, new_token = await start_run(client)
    # within the hour: a late retry of what the superseded run accepted keeps its answer, for
    # that run; anything new from its daemon is quarantined
    response = await post(client, accepted, old_token)
    assert _answer(response) == (202, "duplicate", None)
    assert (response.json()["runId"], response.json()["lastAcceptedSeq"]) == (old_run, 1)
    stale = envelope(old_run, 2)
    assert _answer(await post(client, stale, old_token)) == (202, "quarantined", "mismatch")
    await sql(
        database_url,
        "UPDATE thread_run SET ended_at = now() - %s * interval '1 second' WHERE run_id = %s",
        (DAEMON_TOKEN_GRACE_SECONDS + 60, old_run),
    )
    assert _answer(await post(client, stale, old_token)) == (401, "unauthorized", "expired")
    assert _answer(await post(client, envelope(new_run, 1), new_token)) == (200, "applied", None)


async def test_closing_a_thread_ends_its_run_and_revokes_every_token(
    client, database_url: str
) -> None:
    old_run, old_token = await start_run(client)
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200  # remembered

    response = await client.post("/api/internal/threads/thread-1/close")
    assert response.status_code == 200, response.text
    assert response.json() == {"threadId": "thread-1", "endedRunId": run_id, "revokedTokens": 2}
    run = await run_state(client, run_id)
    assert (run["status"], run["finishReason"], run["endedAt"] is not None) == (
        "failed",
        "thread_closed",
        True,
    )
    pointers = await sql(database_url, "SELECT active_run_id FROM thread_run_context")
    assert pointers == [{"active_run_id": None}]

    stored = await _event_count(database_url)
    for used, body in ((token, envelope(run_id, 2)), (old_token, envelope(old_run, 1))):
        assert _answer(await post(client, body, used)) == (401, "unauthorized", "revoked")
    assert _answer(await post(client, b"{not json", token)) == (401, "unauthorized", "revoked")
    assert await _event_count(database_url) == stored
    assert await quarantine_rows(client) == []

    again = await client.post("/api/internal/threads/thread-1/close")
    assert (again.status_code, again.json()) == (
        200,
        {"threadId": "thread-1", "endedRunId": None, "revokedTokens": 0},
    )
    unknown = await client.post("/api/internal/threads/no-such-thread/close")
    assert unknown.status_code == 404, unknown.text
    assert "not registered" in unknown.json()["error"]


async def test_closing_needs_the_internal_token(client) -> None:
    run_id, token = await start_run(client)
    for auth in ("Bearer wrong", "", "Basic x"):
        response = await client.post(
            "/api/internal/threads/thread-1/close", headers={"Authorization": auth}
        )
        assert response.status_code == 401, response.text
    assert (await run_state(client, run_id))["status"] == "booting"
    assert _answer(await post(client, envelope(run_id, 1), token)) == (200, "applied", None)


async def test_nothing_is_applied_after_a_close_that_races_the_daemon(
    client, database_url: str
) -> None:
    """Envelopes in flight while the thread closes: each is applied before the close (and counted)
    or refused after it; the run's counters hold exactly the applied ones."""
    run_id, token = await start_run(client)

    async def send(seq: int):
        return await post(client, envelope(run_id, seq), token)

    sends = [asyncio.create_task(send(seq)) for seq in range(1, 41)]
    close = await client.post("/api/internal/threads/thread-1/close")
    answers = [_answer(r) for r in await asyncio.gather(*sends)]
    assert close.status_code == 200, close.text
    applied = sum(1 for a in answers if a == (200, "applied", None))
    refused = {a for a in answers if a != (200, "applied", None)}
    assert refused <= {
        (401, "unauthorized", "revoked"),
        (202, "quarantined", "mismatch"),
        (202, "stale_seq", None),
    }
    run = await run_state(client, run_id)
    assert (run["status"], run["acceptedEventCount"]) == ("failed", applied)
    after = await post(client, envelope(run_id, 99), token)
    assert _answer(after) == (401, "unauthorized", "revoked")
    assert await _event_count(database_url) == applied


@pytest.fixture(name="cli")
def fx_cli(valkey_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()

    async def invoke(*args: str, code: int = 0) -> str:
        result = await asyncio.to_thread(invoke_in_process, list(args))
        assert result.exit_code == code, result.output
        # the answer is on stdout, a refusal on stderr (with the log lines: `output` mixes the two)
        return result.stdout if code == 0 else result.stderr

    yield invoke
    get_settings.cache_clear()


async def test_the_cli_revokes_a_threads_tokens(
    client, cli, database_url: str, tmp_path: Path
) -> None:
    assert "--thread" in await cli("tokens", "revoke", "--help")
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200

    # found the way `archive` finds the running `terragon up`: its data directory's up.json
    (tmp_path / "up.json").write_text(json.dumps({"databaseUrl": database_url}))
    out = await cli("tokens", "revoke", "--thread", "thread-1", "--data-dir", str(tmp_path))
    assert json.loads(out) == {"threadId": "thread-1", "endedRunId": run_id, "revokedTokens": 1}
    assert _answer(await post(client, envelope(run_id, 2), token)) == (
        401,
        "unauthorized",
        "revoked",
    )
    out = await cli("tokens", "revoke", "--thread", "thread-1", "--database-url", database_url)
    assert json.loads(out) == {"threadId": "thread-1", "endedRunId": None, "revokedTokens": 0}
    missing = await cli(
        "tokens", "revoke", "--thread", "nope", "--database-url", database_url, code=1
    )
    assert "nope" in missing and "not registered" in missing
