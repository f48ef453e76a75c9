"""The token names its run (CONTRACT §4): a runId-less envelope sent with the token of a run that
is no longer active is that old run's daemon. Before this, under strict=false it was applied to
the *new* active run as a legacy envelope."""

from __future__ import annotations

from tests.fixtures.daemon_events import (
    legacy_envelope,
    post,
    quarantine_rows,
    run_facts,
    run_state,
    set_strict,
)
from tests.fixtures.runs import start_run


async def test_a_superseded_runs_token_without_run_id_is_quarantined_mismatch(client) -> None:
    await set_strict(client, False)
    old_run, old_token = await start_run(client)
    new_run, new_token = await start_run(client)
    assert old_run != new_run
    before = run_facts(await run_state(client, new_run))

    response = await post(client, legacy_envelope(), old_token)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "quarantined"
    assert response.json()["reason"] == "mismatch"
    assert run_facts(await run_state(client, new_run)) == before
    rows = await quarantine_rows(client, reason="mismatch")
    assert [r["activeRunId"] for r in rows] == [new_run]
    assert rows[0]["runIdOrNull"] is None

    # the new run's own daemon is still a legacy envelope, applied
    response = await post(client, legacy_envelope(), new_token)
    assert response.status_code == 200, response.text
    assert response.json()["legacyMode"] is True
    assert (await run_state(client, new_run))["acceptedEventCount"] == 1


async def test_a_zombie_row_replayed_is_never_applied_to_the_new_run(client, app) -> None:
    from terragon_ingest.daemon_events.replay import replay_quarantined

    await set_strict(client, False)
    _, old_token = await start_run(client)
    new_run, _ = await start_run(client)
    response = await post(client, legacy_envelope(), old_token)
    quarantine_id = response.json()["quarantineId"]
    outcome = await replay_quarantined(app.state.daemon_events, quarantine_id)
    assert outcome.replay_status == "quarantined:mismatch"
    assert (await run_state(client, new_run))["acceptedEventCount"] == 0


async def test_strict_mode_is_unchanged_missing_run_id(client) -> None:
    await set_strict(client, True)
    _, old_token = await start_run(client)
    await start_run(client)
    response = await post(client, legacy_envelope(), old_token)
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == "missing_run_id"
