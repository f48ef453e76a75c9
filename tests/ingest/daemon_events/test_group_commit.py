"""Group commit (daemon_events/group_commit.py): envelopes that queue while the database is busy
go through the one decision together, one statement and one commit: without subtransactions, and
with one per envelope when the batch runs again after a failure. Driven with one statement in flight: everything submitted in one turn of the
event loop forms one batch, and everything submitted while a statement runs forms the next one
(deterministic, no timing)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import psycopg
import pytest

from terragon_ingest.daemon_events.group_commit import GroupCommit
from terragon_ingest.errors import DatabaseUnavailable
from tests.fixtures.daemon_events import envelope, post, run_state, sql
from tests.fixtures.runs import start_run
from tests.fixtures.waiting import until
from tests.ingest.daemon_events.group_commit_support import decide_all as _decide_all
from tests.ingest.daemon_events.group_commit_support import (
    fx_group,  # noqa: F401 (the `group` fixture)
    hold_run,
    statements_waiting_on_a_lock,
)


async def test_queued_envelopes_of_many_runs_commit_together_exactly_once(
    app, client, group: GroupCommit
) -> None:
    runs = [await start_run(client, thread_id=f"t-{i}") for i in range(6)]
    items = [
        (envelope(run_id, seq, thread_id=f"t-{i}"), token)
        for seq in (1, 2)
        for i, (run_id, token) in enumerate(runs)
    ]
    replies = await _decide_all(app, items)
    assert [r.ack.status.value for r in replies] == ["applied"] * len(items)
    assert group.batch_sizes == {len(items): 1}  # submitted in one turn: one statement
    for run_id, _ in runs:
        state = await run_state(client, run_id)
        assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (2, 2)
    # the same envelopes again, grouped again: every one a duplicate, nothing written
    replies = await _decide_all(app, items)
    assert {r.ack.status.value for r in replies} == {"duplicate"}


async def test_envelopes_submitted_while_a_statement_runs_form_the_next_batch(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """The first envelope's statement is held (another transaction holds its run's row): the
    three submitted meanwhile queue, and go together once it commits."""
    runs = [await start_run(client, thread_id=f"q-{i}") for i in range(4)]
    items = [
        (envelope(run_id, 1, thread_id=f"q-{i}"), token) for i, (run_id, token) in enumerate(runs)
    ]
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await hold_run(blocker, runs[0][0])

        async def first_is_waiting() -> bool:
            return await statements_waiting_on_a_lock(database_url) > 0

        first = asyncio.ensure_future(_decide_all(app, items[:1]))
        await until(first_is_waiting, "the first statement to wait on the lock", 30)
        rest = asyncio.ensure_future(_decide_all(app, items[1:]))
        await until(lambda: group.queued == 3, "the other three to queue", 30)
        await blocker.commit()  # releases the lock
        replies = await first + await rest
    assert [r.ack.status.value for r in replies] == ["applied"] * 4
    assert group.batch_sizes == {1: 1, 3: 1}


async def test_two_envelopes_of_one_run_in_a_batch_keep_their_order(
    app, client, group: GroupCommit
) -> None:
    other_run, other_token = await start_run(client, thread_id="other")
    run_id, token = await start_run(client)
    replies = await _decide_all(
        app,
        [
            (envelope(other_run, 1, thread_id="other"), other_token),
            (envelope(run_id, 2), token),
            (envelope(run_id, 1), token),  # arrives after seq 2 in the same batch: stale
            (envelope(run_id, 2), token),  # the same eventId again in the same batch
        ],
    )
    assert [r.ack.status.value for r in replies] == ["applied", "applied", "stale_seq", "duplicate"]
    assert group.batch_sizes == {4: 1}
    state = await run_state(client, run_id)
    assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (1, 2)


async def test_one_failing_envelope_changes_no_other_answer_and_is_decided_alone(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """A test-only trigger fails one envelope's insert: its subtransaction rolls back, the others
    of the batch commit, and it is decided again alone (503: the daemon retries it)."""
    runs = [await start_run(client, thread_id=f"t-{i}") for i in range(4)]
    await sql(
        database_url,
        """
        CREATE FUNCTION fail_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.event_id = 'poison' THEN RAISE EXCEPTION 'poisoned envelope'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER poison BEFORE INSERT ON daemon_event
            FOR EACH ROW EXECUTE FUNCTION fail_poison();
        """,
    )
    items = [
        (envelope(run_id, 1, thread_id=f"t-{i}", event_id="poison" if i == 2 else None), token)
        for i, (run_id, token) in enumerate(runs)
    ]
    replies = await _decide_all(app, items)
    poisoned = replies.pop(2)
    assert isinstance(poisoned, DatabaseUnavailable)  # the route answers 503, the daemon retries
    assert [r.ack.status.value for r in replies] == ["applied", "applied", "applied"]
    assert group.batch_sizes == {4: 1}  # one batch (the poisoned one's retry bypasses it)
    states = [await run_state(client, run_id) for run_id, _ in runs]
    assert [s["acceptedEventCount"] for s in states] == [1, 1, 0, 1]
    # The batch ran again isolated: each applied envelope was written by its own subtransaction.
    assert await _writers(database_url, [run_id for run_id, _ in runs]) == 3


async def _writers(database_url: str, run_ids: list[str]) -> int:
    """How many (sub)transactions wrote these runs' dedupe records (one per distinct xmin)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM daemon_event WHERE run_id = ANY(%s)",
            (run_ids,),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_batch_that_fails_nowhere_pays_no_subtransaction(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """The first try runs the batch in one transaction without savepoints: all of its writes
    carry the one transaction id (with a subtransaction each they would carry five)."""
    runs = [await start_run(client, thread_id=f"t-{i}") for i in range(5)]
    items = [(envelope(run_id, 1, thread_id=f"t-{i}"), t) for i, (run_id, t) in enumerate(runs)]
    replies = await _decide_all(app, items)
    assert [r.ack.status.value for r in replies] == ["applied"] * 5
    assert group.batch_sizes == {5: 1}
    assert await _writers(database_url, [run_id for run_id, _ in runs]) == 1


async def test_over_http_a_storm_applies_each_envelope_once(client, database_url: str) -> None:
    """The default settings over the real route: 8 runs x 10 envelopes, all at once."""
    runs = [await start_run(client, thread_id=f"s-{i}") for i in range(8)]
    responses = await asyncio.gather(
        *(
            post(client, envelope(run_id, 1, thread_id=f"s-{i}", event_id=f"e-{n}"), token)
            for i, (run_id, token) in enumerate(runs)
            for n in range(10)
        )
    )
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("applied") == 8  # one eventId per run wins, the rest are stale (seq 1)
    rows = await sql(database_url, "SELECT count(*) AS n FROM daemon_event")
    assert rows[0]["n"] == 8


async def test_an_envelope_spelling_a_nul_is_decided_alone_not_in_the_batch(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """Hostile: messages holding `\\u0000` cannot be stored, and would fail a grouped statement
    (its neighbours' batch run twice). Such a body is a statement of its own: the others commit
    together on the first try, and it is quarantined `invalid_envelope` alone, as without group
    commit."""
    runs = [await start_run(client, thread_id=f"t-{i}") for i in range(4)]
    hostile = [{"type": "assistant", "uuid": "m-nul", "text": "nul \u0000 here"}]
    items = [
        (envelope(run_id, 1, thread_id=f"t-{i}", messages=hostile if i == 1 else None), token)
        for i, (run_id, token) in enumerate(runs)
    ]
    replies = await _decide_all(app, items)
    assert [(r.ack.status.value, r.ack.reason) for r in replies] == [
        ("applied", None),
        ("quarantined", "invalid_envelope"),
        ("applied", None),
        ("applied", None),
    ]
    assert group.batch_sizes == {3: 1, 1: 1}  # the NUL body: a statement of its own, in a slot
    assert await _writers(database_url, [run_id for run_id, _ in runs]) == 1


async def test_an_alone_envelope_has_a_slot_of_its_own_beside_a_running_batch(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """One grouped statement in flight, held on a lock: an `alone` envelope (here a NUL escape)
    does not queue behind it. It is decided in a slot of its own and answered while the grouped
    statement still waits; the grouped one then commits as usual."""
    (run_a, token_a), (run_b, token_b) = [
        await start_run(client, thread_id=t) for t in ("slot-a", "slot-b")
    ]
    hostile = [{"type": "assistant", "uuid": "m-nul", "text": "nul \u0000 here"}]
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await hold_run(blocker, run_a)

        async def grouped_is_waiting() -> bool:
            return await statements_waiting_on_a_lock(database_url) > 0

        first = asyncio.ensure_future(
            _decide_all(app, [(envelope(run_a, 1, thread_id="slot-a"), token_a)])
        )
        await until(grouped_is_waiting, "the grouped statement to wait on the lock", 30)
        alone = asyncio.ensure_future(
            _decide_all(app, [(envelope(run_b, 1, thread_id="slot-b", messages=hostile), token_b)])
        )
        await until(alone.done, "the alone envelope's answer while the batch waits", 30)
        assert not first.done()
        await blocker.commit()
        [applied] = await first
    [quarantined] = alone.result()
    assert (quarantined.ack.status.value, quarantined.ack.reason) == (
        "quarantined",
        "invalid_envelope",
    )
    assert applied.ack.status.value == "applied"


@pytest.mark.parametrize(("spill", "second_starts"), [(3600.0, False), (0.0, True)])
async def test_a_second_statement_starts_only_once_the_first_has_run_the_spill(
    app, client, database_url: str, spill: float, second_starts: bool
) -> None:
    """Two grouped statements allowed, the first held on a lock: arrivals queue behind it (one
    bigger batch next) until it has run `spill` seconds; with no spill, the second slot takes them
    at once (their lanes are free)."""
    group = GroupCommit(app.state.daemon_events.pool, max_batch=32, max_in_flight=2, spill=spill)
    app.state.daemon_events = dataclasses.replace(app.state.daemon_events, group_commit=group)
    runs = [await start_run(client, thread_id=f"sp-{i}") for i in range(3)]
    items = [
        (envelope(run_id, 1, thread_id=f"sp-{i}"), token) for i, (run_id, token) in enumerate(runs)
    ]
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await hold_run(blocker, runs[0][0])

        def waiting_statements() -> Any:
            return statements_waiting_on_a_lock(database_url)

        first = asyncio.ensure_future(_decide_all(app, items[:1]))
        await until(lambda: waiting_statements(), "the first statement to wait on the lock", 30)
        rest = asyncio.ensure_future(_decide_all(app, items[1:]))
        if second_starts:
            # The second slot takes them at once: their runs are not held, so they are answered
            # while the first still waits.
            await until(rest.done, "the second statement's answers beside the first", 30)
            assert group.queued == 0
            assert not first.done()
        else:
            await until(lambda: group.queued == 2, "the other two to queue behind the first", 30)
            assert await waiting_statements() == 1
        await blocker.commit()
        replies = await first + await rest
    assert [r.ack.status.value for r in replies] == ["applied"] * 3
    assert group.batch_sizes == {1: 1, 2: 1}
