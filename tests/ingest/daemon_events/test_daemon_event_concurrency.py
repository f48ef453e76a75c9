"""Exactly-once under races: parallel deliveries of one envelope, a shuffled stream with
duplicates and reordering, and an abort between the dedupe insert and the state write."""

from __future__ import annotations

import asyncio
import random

from tests.fixtures.daemon_events import envelope, post, run_state, sql
from tests.fixtures.runs import start_run


async def test_fifty_parallel_deliveries_of_one_envelope_apply_once(client, database_url) -> None:
    run_id, token = await start_run(client)
    body = envelope(run_id, 1, messages=[{"type": "assistant", "n": i} for i in range(3)])
    responses = await asyncio.gather(*(post(client, body, token) for _ in range(60)))
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("applied") == 1
    assert statuses.count("duplicate") == 59
    assert {r.status_code for r in responses} == {200, 202}
    run = await run_state(client, run_id)
    assert (run["acceptedEventCount"], run["acceptedMessageCount"], run["lastAcceptedSeq"]) == (
        1,
        3,
        1,
    )
    [count] = await sql(
        database_url, "SELECT count(*) AS n FROM run_message WHERE run_id = %s", (run_id,)
    )
    assert count["n"] == 3


async def test_shuffled_stream_with_duplicates_applies_each_event_at_most_once(
    client, database_url
) -> None:
    run_id, token = await start_run(client)
    rng = random.Random(20261126)
    stream = [
        envelope(run_id, seq, messages=[{"type": "assistant", "seq": seq}]) for seq in range(1, 41)
    ]
    stream += [dict(rng.choice(stream)) for _ in range(40)]  # duplicates of sealed batches
    rng.shuffle(stream)
    # Sequential first half (a model predicts it exactly), then the rest concurrently.
    last, expected_applied = 0, 0
    for body in stream[:40]:
        response = await post(client, body, token)
        seq = body["seq"]
        if seq > last:
            assert response.json()["status"] == "applied", (seq, last)
            last, expected_applied = seq, expected_applied + 1
        else:
            assert response.json()["status"] in {"duplicate", "stale_seq"}
    responses = await asyncio.gather(*(post(client, body, token) for body in stream[40:]))
    applied = expected_applied + sum(r.json()["status"] == "applied" for r in responses)
    run = await run_state(client, run_id)
    assert run["lastAcceptedSeq"] == 40
    assert run["acceptedEventCount"] == applied == run["acceptedMessageCount"]
    events = await sql(
        database_url,
        "SELECT event_id, seq FROM daemon_event WHERE run_id = %s ORDER BY accepted_at, seq",
        (run_id,),
    )
    assert len(events) == applied == len({e["event_id"] for e in events})
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)  # accepted in strictly increasing seq order
    assert len(set(seqs)) == len(seqs)


async def test_an_abort_at_the_dedupe_insert_writes_nothing_and_the_retry_applies(
    client, database_url
) -> None:
    """A test-only trigger raises once as the dedupe record is inserted: the one statement that
    also wrote the run's state and its messages aborts, so nothing of it stays and the retry is
    applied, not deduped."""
    run_id, token = await start_run(client)
    await sql(
        database_url,
        """
        CREATE SEQUENCE failpoint_hits;
        CREATE FUNCTION failpoint_after_dedupe() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.event_id = 'evt-1' AND nextval('failpoint_hits') = 1 THEN
                RAISE EXCEPTION 'failpoint: abort at the dedupe insert';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER failpoint AFTER INSERT ON daemon_event FOR EACH ROW
            EXECUTE FUNCTION failpoint_after_dedupe();
        """,
    )
    body = envelope(run_id, 1, messages=[{"type": "assistant", "uuid": "m1"}])
    first = await post(client, body, token)
    assert first.status_code == 503
    assert first.json()["status"] == "unavailable"
    assert first.headers["retry-after"]
    assert await sql(database_url, "SELECT 1 FROM daemon_event") == []
    assert await sql(database_url, "SELECT 1 FROM run_message") == []
    assert (await run_state(client, run_id))["acceptedEventCount"] == 0
    [hits] = await sql(database_url, "SELECT last_value FROM failpoint_hits")
    assert hits["last_value"] == 1  # the failpoint did fire at the dedupe insert
    retry = await post(client, body, token)
    assert (retry.status_code, retry.json()["status"]) == (200, "applied")
    run = await run_state(client, run_id)
    assert (run["acceptedEventCount"], run["acceptedMessageCount"], run["lastAcceptedSeq"]) == (
        1,
        1,
        1,
    )
