"""`terragon quarantine list|show|replay` and `terragon maintenance sweep` against DATABASE_URL
without the server (the CLI runs in a worker thread: it owns its own event loop)."""

from __future__ import annotations

import asyncio
import json

from tests.fixtures.daemon_events import (
    envelope,
    legacy_envelope,
    post,
    quarantine_rows,
    run_state,
    set_strict,
    sql,
)
from tests.fixtures.processes import invoke_in_process, run_terragon
from tests.fixtures.runs import start_run


async def test_replay_decides_under_the_tokens_run_and_is_idempotent(
    client, cli, database_url
) -> None:
    """A replay is decided as the delivery was, under the run its token named: never applied to a
    run started since (CONTRACT §4), applied once that run itself is repaired, then idempotent."""
    await set_strict(client, False)
    run_id, token = await start_run(client, request_id="first")
    await sql(database_url, "UPDATE thread_run SET started_at = now() - interval '2 hours'")
    assert (await client.post("/api/internal/maintenance/sweep")).json()["finalizedRuns"] == 1
    response = await post(client, legacy_envelope([{"type": "assistant", "uuid": "late"}]), token)
    assert (response.status_code, response.json()["reason"]) == (202, "mismatch")  # no active run
    quarantine_id = response.json()["quarantineId"]
    shown = json.loads(await cli("quarantine", "show", quarantine_id))
    assert shown["tokenRunId"] == run_id

    new_run, _ = await start_run(client, request_id="retry")  # another run is not a fix
    outcome = json.loads(await cli("quarantine", "replay", quarantine_id))
    assert outcome["replayStatus"] == "quarantined:mismatch"
    assert (await run_state(client, new_run))["acceptedMessageCount"] == 0

    # The operator repairs the first run (the one the token named) and makes it active again.
    await sql(
        database_url,
        "UPDATE thread_run SET status = 'failed', ended_at = now() WHERE run_id = %s",
        (new_run,),
    )
    await sql(
        database_url,
        "UPDATE thread_run SET status = 'running', ended_at = NULL, finish_reason = NULL "
        "WHERE run_id = %s",
        (run_id,),
    )
    await sql(database_url, "UPDATE thread_run_context SET active_run_id = %s", (run_id,))
    outcome = json.loads(await cli("quarantine", "replay", quarantine_id))
    assert outcome == {
        "quarantineId": quarantine_id,
        "replayStatus": "applied",
        "reDriven": True,
    }
    assert (await run_state(client, run_id))["acceptedMessageCount"] == 1
    assert (await run_state(client, new_run))["acceptedMessageCount"] == 0
    assert json.loads(await cli("quarantine", "replay", quarantine_id))["reDriven"] is False
    forced = json.loads(await cli("quarantine", "replay", quarantine_id, "--force"))
    assert forced["replayStatus"] == "duplicate"
    assert (await run_state(client, run_id))["acceptedEventCount"] == 1
    rows = await quarantine_rows(client)
    assert [r["reason"] for r in rows] == ["mismatch"]  # replays write no new rows
    shown = json.loads(await cli("quarantine", "show", quarantine_id))
    assert shown["replayStatus"] == "duplicate" and shown["replayedAt"]
    assert shown["payloadInline"] is True


async def test_replay_that_is_quarantined_again_records_why(client, cli) -> None:
    await set_strict(client, True)
    _, token = await start_run(client)
    response = await post(client, envelope(None, 1), token)
    quarantine_id = response.json()["quarantineId"]
    outcome = json.loads(await cli("quarantine", "replay", quarantine_id))
    assert outcome["replayStatus"] == "quarantined:missing_run_id"
    assert len(await quarantine_rows(client)) == 1


async def test_list_show_payload_and_sweep_commands(
    client, cli, database_url, valkey_url, tmp_path
) -> None:
    _, token = await start_run(client)
    body = envelope("zombie", 7, messages=[{"type": "assistant", "text": "é" * 9000}])
    await post(client, body, token)
    lines = (await cli("quarantine", "list", "--reason", "mismatch")).splitlines()
    [row] = [json.loads(line) for line in lines]
    assert (row["runIdOrNull"], row["payloadObjectKey"] is not None) == ("zombie", True)
    payload = json.loads(await cli("quarantine", "show", row["id"], "--payload"))
    assert payload["seq"] == 7 and payload["messages"][0]["text"] == "é" * 9000
    await sql(database_url, "UPDATE thread_run SET started_at = now() - interval '2 hours'")
    # Found the way `terragon up`'s other commands find it: the data directory's up.json, no URL.
    up_dir = tmp_path / "up-data"
    up_dir.mkdir()
    (up_dir / "up.json").write_text(json.dumps({"databaseUrl": database_url}))
    code, stdout, stderr = await asyncio.to_thread(
        run_terragon,
        ["quarantine", "list", "--reason", "mismatch", "--data-dir", str(up_dir)],
        {"VALKEY_URL": valkey_url},
    )
    assert code == 0, stderr
    assert [json.loads(line)["id"] for line in stdout.splitlines()] == [row["id"]]
    empty = await asyncio.to_thread(
        invoke_in_process,
        ["quarantine", "list", "--reason", "legacy_mode", "--database-url", database_url],
    )
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "no quarantine rows match these filters" in empty.stderr
    swept = json.loads(await cli("maintenance", "sweep"))
    assert (swept["swept"], swept["finalizedRuns"]) == (True, 1)


async def test_bulk_replay_prints_json_lines_then_its_totals_and_a_bar_only_in_a_terminal(
    client, database_url, valkey_url, tmp_path
) -> None:
    await set_strict(client, True)
    _, token = await start_run(client)
    ids = []
    for seq in (1, 2, 3):
        response = await post(client, envelope(None, seq), token)
        ids.append(response.json()["quarantineId"])
    env = {"VALKEY_URL": valkey_url, "TERRAGON_DATA_DIR": str(tmp_path)}
    args = ["quarantine", "replay", "--reason", "missing_run_id", "--database-url", database_url]

    code, stdout, stderr = await asyncio.to_thread(run_terragon, args, env)
    assert code == 0, stderr
    *outcomes, totals = [json.loads(line) for line in stdout.splitlines()]
    assert [o["quarantineId"] for o in outcomes] == ids  # oldest first: a run keeps its order
    assert {o["replayStatus"] for o in outcomes} == {"quarantined:missing_run_id"}
    assert totals == {
        "total": 3,
        "reDriven": 3,
        "failed": 0,
        "byStatus": {"quarantined:missing_run_id": 3},
    }
    logs = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # piped: JSON only
    assert [e["quarantine_id"] for e in logs if e["event"] == "quarantine_replayed"] == ids

    code, stdout, terminal = await asyncio.to_thread(run_terragon, args, env, stderr_tty=True)
    assert code == 0, terminal
    assert "replaying quarantined envelopes" in terminal and "3/3" in terminal
    assert json.loads(stdout.splitlines()[-1])["total"] == 3  # stdout stays machine-readable

    mixed = [*args, ids[0]]  # IDs and a filter
    bad = await asyncio.to_thread(run_terragon, mixed, env)
    assert bad[0] != 0 and "not both" in bad[2]
