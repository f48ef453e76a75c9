"""Group commit of quarantine rows (daemon_events/group_commit.py `QuarantineCommit`): rows that
queue while the database is busy are recorded together, one statement and one commit, each row
with its events in its own subtransaction. Driven with one statement in flight, so everything
submitted while the first runs forms the next batch (deterministic, no timing)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from terragon_core import QUARANTINE_RECORDED_EVENT, PreviewEventName, QuarantineReason
from terragon_ingest.daemon_events import quarantine, recording, repository
from terragon_ingest.daemon_events.group_commit import QuarantineCommit
from terragon_ingest.daemon_events.quarantine import Dimensions
from terragon_ingest.db import connection
from tests.fixtures.daemon_events import sql
from tests.fixtures.runs import start_run

DIMS = Dimensions("acme/web", "user-1", "manual", "sb-1")


@pytest.fixture(name="group")
def fx_group(app, client) -> QuarantineCommit:
    group = QuarantineCommit(app.state.daemon_events.pool, max_batch=32, max_in_flight=1)
    app.state.daemon_events = dataclasses.replace(app.state.daemon_events, quarantine_commit=group)
    return group


async def _item(app, thread_id: str) -> tuple[str, dict[str, Any]]:
    """A strict `mismatch` row of `thread_id` (small: kept inline), its event and its denial."""
    row = await quarantine.build_row(
        app.state.daemon_events,
        body=b'{"threadId": "%s"}' % thread_id.encode(),
        reason=QuarantineReason.MISMATCH,
        thread_id=thread_id,
        thread_chat_id="chat-1",
        run_id="run-old",
        active_run_id="run-new",
        token_run_id="run-old",
        strict=True,
        payload_version=2,
        event_id=f"e-{thread_id}",
        seq=1,
        trace_id=f"trace-{thread_id}",
        dims=DIMS,
    )
    quarantine_id = repository.new_quarantine_id()
    event = recording.quarantine_event(row, quarantine_id, DIMS)
    denial = recording.access_denied_event(row, DIMS)
    return quarantine_id, repository.quarantine_item(row, quarantine_id, event, denial)


async def _live_session(client, database_url: str, session_id: str, thread_id: str) -> None:
    run_id, _ = await start_run(client, thread_id=thread_id)
    await sql(
        database_url,
        """INSERT INTO preview_session (preview_session_id, thread_id, thread_chat_id, run_id,
               user_id, repo_full_name, upstream_origin, expires_at)
           VALUES (%s, %s, 'chat-1', %s, 'user-1', 'acme/web', 'http://127.0.0.1:3000',
                   now() + interval '30 minutes')""",
        (session_id, thread_id, run_id),
    )


async def _events(database_url: str, name: str) -> list[dict[str, Any]]:
    return await sql(
        database_url,
        "SELECT thread_id, preview_session_id, properties FROM preview_event"
        " WHERE event_name = %s ORDER BY thread_id",
        (name,),
    )


async def test_queued_rows_commit_together_each_with_its_events_once(
    app, client, group: QuarantineCommit, database_url: str
) -> None:
    await _live_session(client, database_url, "ps-live", "t-1")
    items = [await _item(app, f"t-{i}") for i in range(5)]
    answers = await asyncio.gather(*(group.submit(item) for _, item in items))
    assert answers == [[], ["ps-live"], [], [], []]
    assert group.batch_sizes == {5: 1}  # submitted in one turn: one statement
    rows = await sql(database_url, "SELECT id::text, thread_id FROM daemon_event_quarantine")
    assert sorted((r["id"], r["thread_id"]) for r in rows) == sorted(
        (qid, f"t-{i}") for i, (qid, _) in enumerate(items)
    )
    recorded = await _events(database_url, QUARANTINE_RECORDED_EVENT)
    assert [e["properties"]["quarantineId"] for e in recorded] == [qid for qid, _ in items]
    denied = await _events(database_url, PreviewEventName.ACCESS_DENIED)
    assert [(e["thread_id"], e["preview_session_id"]) for e in denied] == [("t-1", "ps-live")]
    assert denied[0]["properties"]["reason"] == "binding_mismatch"


async def test_a_failing_row_fails_its_batch_and_every_row_is_recorded_again_alone(
    app, group: QuarantineCommit, database_url: str
) -> None:
    """A test-only trigger fails one row's insert: the set-based statement writes nothing, every
    row of it is recorded again alone (`once`), the poisoned one fails alone (the route answers
    503, the daemon retries it), and each other row and its event are written exactly once."""
    await sql(
        database_url,
        """
        CREATE FUNCTION fail_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.thread_id = 't-poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER poison BEFORE INSERT ON daemon_event_quarantine
            FOR EACH ROW EXECUTE FUNCTION fail_poison();
        """,
    )
    names = ("t-0", "t-1", "t-poison", "t-3")
    rows = [(await _item(app, name))[1]["row"] for name in names]
    answers = await asyncio.gather(
        *(recording.record_quarantine(app.state.daemon_events, row, dims=DIMS) for row in rows),
        return_exceptions=True,
    )
    poisoned = answers.pop(2)
    assert isinstance(poisoned, Exception)
    assert group.batch_sizes == {4: 1}  # one statement (the retries bypass it)
    stored = await sql(
        database_url, "SELECT id::text, thread_id FROM daemon_event_quarantine ORDER BY 2"
    )
    assert [(r["id"], r["thread_id"]) for r in stored] == list(
        zip(answers, ["t-0", "t-1", "t-3"], strict=True)
    )
    recorded = await _events(database_url, QUARANTINE_RECORDED_EVENT)
    assert [e["thread_id"] for e in recorded] == ["t-0", "t-1", "t-3"]


async def test_a_row_whose_batch_committed_before_the_connection_was_lost_is_not_written_twice(
    app, client, database_url: str
) -> None:
    """A grouped statement that failed as a whole is recorded again alone with `once`: when the
    failure was a connection lost after the commit, the row is already there under its id."""
    await _live_session(client, database_url, "ps-live", "t-0")
    quarantine_id, item = await _item(app, "t-0")
    async with connection(app.state.daemon_events.pool) as conn:
        assert await repository.insert_quarantine(conn, item) == ["ps-live"]
        assert await repository.insert_quarantine(conn, item, once=True) == []
    rows = await sql(database_url, "SELECT id::text FROM daemon_event_quarantine")
    assert [r["id"] for r in rows] == [quarantine_id]
    assert len(await _events(database_url, QUARANTINE_RECORDED_EVENT)) == 1
    assert len(await _events(database_url, PreviewEventName.ACCESS_DENIED)) == 1
