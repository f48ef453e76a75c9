"""CONTRACT §4, row by row: every response status over HTTP, its body, the quarantine row, and
whether the run's state changed. Runs use the `manual` provider (sandbox unreadable)."""

from __future__ import annotations

from tests.fixtures.daemon_events import (
    envelope,
    post,
    quarantine_rows,
    run_facts,
    run_state,
    set_strict,
    sql,
    stored_messages,
)
from tests.fixtures.runs import start_run


async def test_applied_is_200_and_mutates_once(client) -> None:
    await set_strict(client, True)
    run_id, token = await start_run(client)
    messages = [{"type": "assistant", "uuid": "u1"}, {"type": "assistant", "uuid": "u2"}]
    response = await post(client, envelope(run_id, 1, messages=messages), token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert "legacyMode" not in body
    assert body["appliedMessages"] == 2
    run = await run_state(client, run_id)
    assert run["status"] == "running"
    assert run["daemonPayloadVersion"] == 2
    assert run["lastAcceptedSeq"] == 1
    assert (run["acceptedEventCount"], run["acceptedMessageCount"]) == (1, 2)
    assert await quarantine_rows(client) == []


async def test_duplicate_event_id_is_202_and_changes_nothing(client) -> None:
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    before = run_facts(await run_state(client, run_id))
    response = await post(client, envelope(run_id, 2, event_id="evt-1"), token)
    assert response.status_code == 202
    assert response.json()["status"] == "duplicate"
    assert run_facts(await run_state(client, run_id)) == before
    assert await quarantine_rows(client) == []


async def test_seq_not_greater_is_202_stale_seq_and_changes_nothing(client) -> None:
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 5), token)).status_code == 200
    before = run_facts(await run_state(client, run_id))
    for seq, event_id in ((5, "other-5"), (3, "evt-3")):
        response = await post(client, envelope(run_id, seq, event_id=event_id), token)
        assert response.status_code == 202
        assert response.json() == {"status": "stale_seq", "runId": run_id, "lastAcceptedSeq": 5}
    assert run_facts(await run_state(client, run_id)) == before
    assert await quarantine_rows(client) == []


async def test_strict_missing_run_id_is_quarantined(client, database_url) -> None:
    await set_strict(client, True)
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    response = await post(
        client, envelope("", 1), token, traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["reason"]) == ("quarantined", "missing_run_id")
    assert run_facts(await run_state(client, run_id)) == before
    [row] = await quarantine_rows(client, threadId="thread-1")
    assert row["id"] == body["quarantineId"]
    assert row["reason"] == "missing_run_id"
    assert row["runIdOrNull"] is None
    assert row["activeRunId"] == run_id
    assert (row["repoFullName"], row["userId"], row["sandboxProvider"]) == (
        "acme/web",
        "user-1",
        "manual",
    )
    assert row["payloadVersion"] == 2
    assert row["payloadSize"] > 0 and len(row["payloadHash"]) == 64
    assert row["payloadPrefix2k"].startswith("{")
    assert row["payloadObjectKey"] is None
    [stored] = await sql(
        database_url, "SELECT trace_id, event_id, seq FROM daemon_event_quarantine"
    )
    assert stored == {"trace_id": "ab" * 16, "event_id": "evt-1", "seq": 1}
    [event] = await sql(
        database_url,
        "SELECT event_name, origin, trace_id FROM preview_event WHERE origin = 'daemon_event'",
    )
    assert event == {
        "event_name": "preview.quarantine.recorded",
        "origin": "daemon_event",
        "trace_id": "ab" * 16,
    }


async def test_zombie_of_a_superseded_run_is_quarantined_as_mismatch(client) -> None:
    await set_strict(client, True)
    old_run, old_token = await start_run(client, request_id="first")
    new_run, _ = await start_run(client, request_id="second")
    before_old = run_facts(await run_state(client, old_run))
    before_new = run_facts(await run_state(client, new_run))
    response = await post(client, envelope(old_run, 1), old_token)
    assert response.status_code == 202
    assert response.json()["reason"] == "mismatch"
    assert run_facts(await run_state(client, old_run)) == before_old
    assert run_facts(await run_state(client, new_run)) == before_new
    [row] = await quarantine_rows(client, reason="mismatch")
    assert (row["runIdOrNull"], row["activeRunId"]) == (old_run, new_run)


async def test_legacy_mismatch_is_never_applied_to_another_run(client) -> None:
    await set_strict(client, False)
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    response = await post(client, envelope("someone-else", 1), token)
    assert (response.status_code, response.json()["reason"]) == (202, "mismatch")
    assert run_facts(await run_state(client, run_id)) == before


async def test_legacy_v1_under_strict_false_is_applied_with_a_legacy_mode_row(client) -> None:
    await set_strict(client, False)
    run_id, token = await start_run(client)
    body = {"threadId": "thread-1", "threadChatId": "chat-1", "messages": [{"type": "assistant"}]}
    response = await post(client, body, token)
    assert response.status_code == 200
    ack = response.json()
    assert (ack["status"], ack["legacyMode"]) == ("applied", True)
    run = await run_state(client, run_id)
    assert (run["daemonPayloadVersion"], run["acceptedEventCount"], run["lastAcceptedSeq"]) == (
        1,
        1,
        None,
    )
    [row] = await quarantine_rows(client)
    assert (row["reason"], row["id"], row["activeRunId"]) == (
        "legacy_mode",
        ack["quarantineId"],
        run_id,
    )
    # An exact resend of a v1 body (no eventId) is a duplicate, not a second apply.
    again = await post(client, body, token)
    assert (again.status_code, again.json()["status"]) == (202, "duplicate")
    assert (await run_state(client, run_id))["acceptedEventCount"] == 1


async def test_other_payload_version_than_the_first_accepted_is_quarantined(client) -> None:
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    before = run_facts(await run_state(client, run_id))
    response = await post(client, envelope(run_id, None, version=1), token)
    assert (response.status_code, response.json()["reason"]) == (202, "payload_version_mismatch")
    assert run_facts(await run_state(client, run_id)) == before
    [row] = await quarantine_rows(client)
    assert (row["reason"], row["payloadVersion"]) == ("payload_version_mismatch", 1)


async def test_v2_without_event_id_or_positive_seq_is_invalid_envelope(client) -> None:
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    for body in (envelope(run_id, 1, event_id=""), envelope(run_id, 0), envelope(run_id, None)):
        response = await post(client, body, token)
        assert (response.status_code, response.json()["reason"]) == (202, "invalid_envelope")
    assert run_facts(await run_state(client, run_id)) == before
    assert len(await quarantine_rows(client, reason="invalid_envelope")) == 3


async def test_terminal_v2_without_end_sha_is_quarantined_without_terminal_mutation(
    client, database_url
) -> None:
    run_id, token = await start_run(client)
    assert (await post(client, envelope(run_id, 1), token)).status_code == 200
    before = run_facts(await run_state(client, run_id))
    terminal = envelope(run_id, 2, messages=[{"type": "result", "is_error": False}], endSha=None)
    response = await post(client, terminal, token)
    assert (response.status_code, response.json()["reason"]) == (202, "missing_end_sha")
    assert run_facts(await run_state(client, run_id)) == before
    [run] = await sql(
        database_url, "SELECT missing_end_sha_at FROM thread_run WHERE run_id = %s", (run_id,)
    )
    assert run["missing_end_sha_at"] is not None
    [row] = await quarantine_rows(client, runId=run_id)
    assert row["reason"] == "missing_end_sha"


async def test_terminal_with_end_sha_on_an_unreadable_sandbox_falls_back(client) -> None:
    run_id, token = await start_run(client)
    messages = [{"type": "assistant"}, {"type": "result", "is_error": False}]
    response = await post(client, envelope(run_id, 1, messages=messages, endSha="a" * 40), token)
    assert response.status_code == 200
    run = await run_state(client, run_id)
    assert (run["status"], run["terminalEventId"], run["runEndSha"]) == (
        "finished",
        "evt-1",
        "a" * 40,
    )
    assert run["finishReason"] == "completed"
    assert run["diffSource"] == "working-tree-fallback"
    assert run["diffSourceContext"].startswith("head_unreadable")
    # Terminal transitions happen once: a later terminal envelope is for an ended run (nothing is
    # applied to it: quarantined `mismatch`) and leaves them alone.
    error = [{"type": "custom-error"}]
    response = await post(client, envelope(run_id, 2, messages=error, endSha="b" * 40), token)
    assert (response.status_code, response.json().get("reason")) == (202, "mismatch")
    after = await run_state(client, run_id)
    assert (after["status"], after["terminalEventId"], after["runEndSha"]) == (
        "finished",
        "evt-1",
        "a" * 40,
    )


async def test_failure_terminal_marks_the_run_failed(client) -> None:
    run_id, token = await start_run(client)
    messages = [{"type": "result", "is_error": True}]
    assert (
        await post(client, envelope(run_id, 1, messages=messages, endSha="c" * 40), token)
    ).status_code == 200
    run = await run_state(client, run_id)
    assert (run["status"], run["finishReason"]) == ("failed", "agent_error")


async def test_resent_batch_under_a_new_event_id_applies_only_new_messages(
    client, database_url
) -> None:
    run_id, token = await start_run(client)
    first = [{"type": "assistant", "uuid": "a"}, {"type": "assistant", "uuid": "b"}]
    assert (await post(client, envelope(run_id, 1, messages=first), token)).json()[
        "appliedMessages"
    ] == 2
    merged = [
        {"type": "assistant", "uuid": "b"},
        {"type": "assistant", "uuid": "c"},
        {"type": "x", "uuid": "c"},
        {"type": "no-uuid"},
    ]
    response = await post(client, envelope(run_id, 2, messages=merged), token)
    assert response.json()["appliedMessages"] == 2  # c once, plus the uuid-less one
    rows = await stored_messages(database_url, run_id)
    assert [(r["ordinal"], r["message_uuid"]) for r in rows] == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, None),
    ]
    assert (await run_state(client, run_id))["acceptedMessageCount"] == 4


async def test_body_not_json_or_wrong_types_is_400_invalid(client) -> None:
    run_id, token = await start_run(client)
    before = run_facts(await run_state(client, run_id))
    for raw in (
        b"not json",
        b'{"threadId": "thread-1", "messages": [], "seq": "1"}',
        b'{"messages": []}',
    ):
        response = await post(client, raw, token)
        assert response.status_code == 400
        body = response.json()
        assert body["status"] == "invalid" and body["errors"]
    assert run_facts(await run_state(client, run_id)) == before
    assert await quarantine_rows(client) == []


async def test_missing_or_unknown_token_is_401(client) -> None:
    run_id, _ = await start_run(client)
    for token in (None, "tdt_unknown"):
        response = await post(client, envelope(run_id, 1), token)
        assert response.status_code == 401
        assert response.json()["status"] == "unauthorized"
    assert (await run_state(client, run_id))["acceptedEventCount"] == 0


async def test_token_of_another_thread_is_403(client) -> None:
    run_id, _ = await start_run(client)
    _, other_token = await start_run(client, thread_id="thread-2")
    response = await post(client, envelope(run_id, 1), other_token)
    assert response.status_code == 403
    assert response.json()["status"] == "forbidden"
    assert (await run_state(client, run_id))["acceptedEventCount"] == 0
    assert await quarantine_rows(client) == []


async def test_metrics_count_each_decision_with_dimensions(client, app) -> None:
    await set_strict(client, True)
    run_id, token = await start_run(client)
    await post(client, envelope(None, 1), token)
    await post(client, envelope(run_id, 1), token)
    metrics = app.state.health.metrics
    from terragon_core import MetricName

    labels = {"repo": "acme/web", "user": "user-1", "provider": "manual"}
    assert metrics.value(MetricName.STRICT_MISMATCH, **labels, reason="missing_run_id") == 1
    assert metrics.value(MetricName.QUARANTINE, **labels, reason="missing_run_id") == 1
    assert metrics.value(MetricName.ENVELOPE, **labels, reason="applied") == 1
    assert metrics.value(MetricName.ENVELOPE, **labels, reason="quarantined") == 1


async def test_strict_mismatch_on_a_live_preview_emits_access_denied(client, database_url) -> None:
    await set_strict(client, True)
    old_run, old_token = await start_run(client, request_id="first")
    new_run, _ = await start_run(client, request_id="second")
    await sql(
        database_url,
        """INSERT INTO preview_session (preview_session_id, thread_id, thread_chat_id, run_id,
               user_id, repo_full_name, upstream_origin, expires_at)
           VALUES ('ps-live', 'thread-1', 'chat-1', %s, 'user-1', 'acme/web',
                   'http://127.0.0.1:3000', now() + interval '30 minutes'),
                  ('ps-revoked', 'thread-1', 'chat-1', %s, 'user-1', 'acme/web',
                   'http://127.0.0.1:3000', now() + interval '30 minutes')""",
        (new_run, new_run),
    )
    await sql(
        database_url,
        "UPDATE preview_session SET revoked_at = now() WHERE preview_session_id = 'ps-revoked'",
    )
    response = await post(client, envelope(old_run, 1), old_token)
    assert response.json()["reason"] == "mismatch"
    events = await sql(
        database_url,
        "SELECT preview_session_id, run_id, properties FROM preview_event WHERE event_name = 'v1.preview.access.denied'",
    )
    assert [e["preview_session_id"] for e in events] == ["ps-live"]
    assert events[0]["run_id"] == new_run
    assert events[0]["properties"]["reason"] == "binding_mismatch"
    assert events[0]["properties"]["envelopeRunId"] == old_run
