"""The set-based batch decision (db/functions/terragon_ingest_envelopes.sql): what deciding a batch
together could break, beside the precedence matrix (which runs every rule pair through a batch of
one). Envelopes of one run in one batch must be decided as if one after the other, in arrival
order, each seeing the earlier ones' writes: in and out of seq order, an eventId repeated across
them, the terminal envelope first; a zombie and its new run's daemon in one batch must not be
confused. Each batch here is submitted in one turn of the event loop, so it is one statement
(asserted through `batch_sizes`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest

from terragon_ingest.daemon_events.group_commit import GroupCommit
from tests.fixtures.daemon_events import envelope, run_state, sql, stored_messages
from tests.fixtures.runs import start_run
from tests.fixtures.waiting import until
from tests.ingest.daemon_events.group_commit_support import decide_all as _decide_all
from tests.ingest.daemon_events.group_commit_support import (
    fx_group,  # noqa: F401 (the `group` fixture)
    hold_run,
    statements_waiting_on_a_lock,
)

RESULT = [{"type": "result", "is_error": False}]


def _answers(replies: list[Any]) -> list[str]:
    return [r.ack.reason.value if r.ack.reason is not None else r.ack.status.value for r in replies]


async def _messages(database_url: str, run_id: str) -> list[tuple[int, str]]:
    return [(r["ordinal"], r["event_id"]) for r in await stored_messages(database_url, run_id)]


def _one(run_id: str, seq: int, **extra: Any) -> dict[str, Any]:
    return envelope(run_id, seq, messages=[{"type": "assistant", "text": f"s{seq}"}], **extra)


async def test_a_runs_envelopes_in_seq_order_all_apply_in_order_among_other_runs(
    app, client, group: GroupCommit, database_url: str
) -> None:
    (a, ta), (b, tb) = [await start_run(client, thread_id=t) for t in ("a", "b")]
    items = [
        (_one(a, 1, thread_id="a"), ta),
        (_one(b, 1, thread_id="b"), tb),
        (_one(a, 2, thread_id="a"), ta),
        (_one(b, 2, thread_id="b"), tb),
        (_one(a, 3, thread_id="a"), ta),
    ]
    assert _answers(await _decide_all(app, items)) == ["applied"] * 5
    assert group.batch_sizes == {5: 1}
    state = await run_state(client, a)
    assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (3, 3)
    # Each envelope's message numbered after the earlier ones', in arrival order.
    assert await _messages(database_url, a) == [(1, "evt-1"), (2, "evt-2"), (3, "evt-3")]
    assert await _messages(database_url, b) == [(1, "evt-1"), (2, "evt-2")]


async def test_out_of_seq_order_the_later_arrival_is_stale_and_the_next_one_applies(
    app, client, group: GroupCommit, database_url: str
) -> None:
    run_id, token = await start_run(client)
    items = [(_one(run_id, s), token) for s in (2, 1, 3, 3)]
    replies = await _decide_all(app, items)
    # seq 1 after 2: stale; the second seq 3 repeats eventId evt-3: a duplicate (rule 6 before 7).
    assert _answers(replies) == ["applied", "stale_seq", "applied", "duplicate"]
    assert group.batch_sizes == {4: 1}
    state = await run_state(client, run_id)
    assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (2, 3)
    assert await _messages(database_url, run_id) == [(1, "evt-2"), (2, "evt-3")]


async def test_an_event_id_repeated_under_a_higher_seq_is_a_duplicate(
    app, client, group: GroupCommit
) -> None:
    run_id, token = await start_run(client)
    items = [
        (_one(run_id, 1, event_id="same"), token),
        (_one(run_id, 2, event_id="same"), token),
        (_one(run_id, 3, event_id="other"), token),
    ]
    assert _answers(await _decide_all(app, items)) == ["applied", "duplicate", "applied"]
    state = await run_state(client, run_id)
    assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (2, 3)


async def test_a_message_uuid_repeated_across_a_runs_envelopes_is_stored_once(
    app, client, group: GroupCommit, database_url: str
) -> None:
    run_id, token = await start_run(client)
    message = {"type": "assistant", "uuid": "m-shared", "text": "x"}
    items = [
        (envelope(run_id, 1, messages=[message, {"type": "assistant", "uuid": "m-1"}]), token),
        (envelope(run_id, 2, messages=[message, {"type": "assistant", "uuid": "m-2"}]), token),
    ]
    assert _answers(await _decide_all(app, items)) == ["applied", "applied"]
    rows = await stored_messages(database_url, run_id)
    assert [(r["ordinal"], r["message_uuid"]) for r in rows] == [
        (1, "m-shared"),
        (2, "m-1"),
        (3, "m-2"),
    ]
    state = await run_state(client, run_id)
    assert state["acceptedMessageCount"] == 3


async def test_the_terminal_envelope_first_ends_the_run_and_what_follows_it_is_not_applied(
    app, client, group: GroupCommit
) -> None:
    """The terminal envelope (seq 2) and a later one of its run (seq 3) in one batch: the terminal
    one needs its inputs and is decided again alone; the later one is decided in the batch, after
    it in arrival order, so it is applied first and the terminal one, now behind the run's seq,
    is stale. What the contract's rules give one envelope after the other; the run stays live."""
    run_id, token = await start_run(client)
    items = [
        (_one(run_id, 1), token),
        (envelope(run_id, 2, messages=RESULT, endSha="a" * 40), token),
        (_one(run_id, 3), token),
    ]
    assert _answers(await _decide_all(app, items)) == ["applied", "stale_seq", "applied"]
    state = await run_state(client, run_id)
    assert (state["status"], state["lastAcceptedSeq"]) == ("running", 3)


async def test_a_terminal_envelope_and_its_retry_in_one_batch_end_the_run_once(
    app, client, group: GroupCommit
) -> None:
    run_id, token = await start_run(client)
    terminal = envelope(run_id, 1, messages=RESULT, endSha="a" * 40)
    replies = await _decide_all(app, [(terminal, token), (terminal, token)])
    assert sorted(_answers(replies)) == ["applied", "duplicate"]
    state = await run_state(client, run_id)
    assert (state["status"], state["acceptedEventCount"]) == ("finished", 1)
    # And after it, in the next batch, its run's envelopes are mismatch (an ended run).
    replies = await _decide_all(app, [(_one(run_id, 2), token)])
    assert _answers(replies) == ["mismatch"]


async def test_a_zombie_and_its_new_runs_daemon_in_one_batch(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """The zombie (the superseded run's daemon, its own token and runId, and a legacy envelope
    under that token) is never applied, neither to its run nor to the new one; the new run's
    daemon is applied, whichever comes first in the batch."""
    old_run, old_token = await start_run(client)
    new_run, new_token = await start_run(client)  # same thread and chat: supersedes the old one
    items = [
        (_one(old_run, 7), old_token),
        (_one(new_run, 1), new_token),
        (envelope(None, None, version=1, messages=[{"type": "assistant"}]), old_token),
        (_one(new_run, 2), new_token),
        (_one(new_run, 3, runId=old_run), new_token),  # the old runId under the new token
    ]
    replies = await _decide_all(app, items)
    assert _answers(replies) == ["mismatch", "applied", "mismatch", "applied", "mismatch"]
    assert group.batch_sizes == {5: 1}
    old, new = await run_state(client, old_run), await run_state(client, new_run)
    assert (old["status"], old["acceptedEventCount"]) == ("failed", 0)
    assert (new["acceptedEventCount"], new["lastAcceptedSeq"]) == (2, 2)
    rows = await sql(
        database_url,
        "SELECT run_id, reason FROM daemon_event_quarantine ORDER BY created_at",
    )
    assert len(rows) == 3 and {r["reason"] for r in rows} == {"mismatch"}


async def test_a_batch_carrying_an_envelopes_inputs_is_refused_whole(database_url: str) -> None:
    """The legacy_mode row and UI outcome come only with an envelope alone (written by
    terragon_ingest_envelope): a batch that carries one is refused, nothing of it written."""
    import psycopg

    batch = json.dumps([{"thread_id": "t", "thread_chat_id": "c", "legacy_row": {"id": "x"}}])
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            await conn.execute(
                "SELECT * FROM terragon_ingest_envelopes(%s::jsonb, false)", (batch,)
            )


async def test_batches_over_the_same_runs_in_opposite_orders_never_deadlock(
    client, database_url: str
) -> None:
    """Each batch locks its runs in one statement, in run_id order, whatever order its envelopes
    came in: two statements over the same runs wait for each other, never deadlock. A deadlock
    would fail a statement, and its batch would run again one subtransaction per envelope: each
    seq's dedupe records would then carry several transaction ids, not one."""
    import asyncio

    import psycopg

    from terragon_core import decode_envelope
    from terragon_ingest.daemon_events.repository import ingest_envelopes
    from terragon_ingest.daemon_events.service import Delivery, decision_input
    from terragon_ingest.runs.tokens import hash_token

    runs = [await start_run(client, thread_id=f"d-{i}") for i in range(6)]

    def inputs(seq: int, order: list[int]) -> list[Any]:
        batch = []
        for i in order:
            run_id, token = runs[i]
            raw = json.dumps(_one(run_id, seq, thread_id=f"d-{i}")).encode()
            delivery = Delivery(decode_envelope(raw), raw, "t", token_hash=hash_token(token))
            batch.append(decision_input(delivery))
        return batch

    forward, backward = list(range(6)), list(reversed(range(6)))
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as one,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as two,
    ):
        for round_ in range(15):
            seq = 2 * round_ + 1
            answers = await asyncio.gather(
                ingest_envelopes(one, inputs(seq, forward)),
                ingest_envelopes(two, inputs(seq + 1, backward)),
            )
            assert all(a is not None for side in answers for a in side)
    writers = await sql(
        database_url,
        "SELECT seq, count(DISTINCT xmin::text) AS n FROM daemon_event"
        " WHERE run_id = ANY(%s) GROUP BY seq",
        ([run_id for run_id, _ in runs],),
    )
    assert {r["n"] for r in writers} == {1}, writers  # each batch: one transaction, no retry
    for run_id, _ in runs:
        state = await run_state(client, run_id)
        # Every round applied its seq+1 envelope; its seq one too unless the other came first.
        assert state["lastAcceptedSeq"] == 30
        assert 15 <= state["acceptedEventCount"] <= 30


async def test_what_cannot_be_applied_is_answered_while_another_transaction_holds_the_run(
    app, client, group: GroupCommit, database_url: str
) -> None:
    """A retry, a reordered envelope and a wrong runId take no run lock: they are answered while
    another transaction holds the run's row (a statement applying one of its envelopes), and
    write nothing. An envelope that may apply waits for it."""
    run_id, token = await start_run(client)
    assert _answers(await _decide_all(app, [(_one(run_id, 2), token)])) == ["applied"]
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await hold_run(blocker, run_id)
        retries = [
            (_one(run_id, 2), token),  # the same envelope again
            (_one(run_id, 1, event_id="late"), token),  # seq not past the run's
            (_one("not-this-run", 3, event_id="other"), token),  # another run's id
        ]
        answers = await asyncio.wait_for(_decide_all(app, retries), 30)
        assert _answers(answers) == ["duplicate", "stale_seq", "mismatch"]
        fresh = asyncio.ensure_future(_decide_all(app, [(_one(run_id, 3), token)]))

        async def fresh_waits() -> bool:
            return await statements_waiting_on_a_lock(database_url) == 1

        await until(fresh_waits, "the envelope that may apply to wait for the run", 30)
        assert not fresh.done()
        await blocker.commit()
        assert _answers(await fresh) == ["applied"]
    state = await run_state(client, run_id)
    assert (state["acceptedEventCount"], state["lastAcceptedSeq"]) == (2, 3)
