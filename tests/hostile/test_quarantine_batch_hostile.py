"""A hostile envelope in a storm of quarantined ones (quarantine rows go through group commit):
the values it carries that PostgreSQL cannot store get it a final 4xx/202 answer, never a 5xx,
and every other envelope of the storm still gets its own row, exactly once."""

from __future__ import annotations

import asyncio

from tests.fixtures.daemon_events import envelope, post, set_strict, sql
from tests.fixtures.runs import start_run


async def test_a_nul_carrying_envelope_among_quarantined_ones_poisons_no_other_row(
    client, database_url: str
) -> None:
    await set_strict(client, True)
    old_run, old_token = await start_run(client, request_id="first")
    await start_run(client, request_id="second")  # supersedes: old_run's envelopes are mismatches
    hostile = envelope(old_run, 999, event_id="evil\u0000id", messages=[{"type": "a\u0000"}])
    bodies = [envelope(old_run, n, event_id=f"zombie-{n}") for n in range(1, 12)]
    bodies.insert(5, hostile)
    responses = await asyncio.gather(*(post(client, body, old_token) for body in bodies))
    answered = [r.status_code for r in responses]
    assert all(code < 500 for code in answered), [(r.status_code, r.text) for r in responses]
    hostile_answer = responses.pop(5)
    assert hostile_answer.status_code in {202, 400}, hostile_answer.text
    assert {r.json()["reason"] for r in responses} == {"mismatch"}
    ids = sorted(r.json()["quarantineId"] for r in responses)
    rows = await sql(
        database_url,
        "SELECT id::text FROM daemon_event_quarantine WHERE event_id LIKE 'zombie-%%' ORDER BY 1",
    )
    assert [r["id"] for r in rows] == ids  # one row each, none twice, none lost
