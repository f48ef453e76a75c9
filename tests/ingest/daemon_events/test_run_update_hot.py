"""Each applied envelope updates its run's row (seq, counters, last_event_at); that update must stay
HOT (migration 2026-12-01-1200): no thread_run index holds a column it changes, so PostgreSQL
writes no index entry for it and a busy run's dead versions are pruned on their page instead of
piling up in four btrees. Counted with `pg_stat_xact_user_tables` (this backend's counts not yet
flushed)."""

from __future__ import annotations

import psycopg

from tests.fixtures.daemon_events import APPLY_SQL, messages_json
from tests.fixtures.runs import start_run

RUN_UPDATES = """
SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'thread_run'
"""


async def test_an_applied_envelope_updates_its_run_without_an_index_write(
    client, database_url: str
) -> None:
    run_id, _ = await start_run(client)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # The first envelope moves the run from booting to running: a status change, which the
        # partial indexes' predicates read, is not HOT, and happens once per run.
        first = {"run": run_id, "event": "e1", "seq": 1, "messages": messages_json("m-1")}
        assert await (await conn.execute(APPLY_SQL, first)).fetchone() == ("applied", 1)
        async with conn.transaction():
            # now() is the transaction's start, so here only the first of these updates changes
            # last_event_at: enough to fail with an index on it (the dropped one did).
            # Counts not yet flushed to the shared statistics show here too: take the difference.
            before = await (await conn.execute(RUN_UPDATES)).fetchone()
            for seq in (2, 3, 4):
                params = {
                    "run": run_id,
                    "event": f"e{seq}",
                    "seq": seq,
                    "messages": messages_json(f"m-{seq}"),
                }
                assert await (await conn.execute(APPLY_SQL, params)).fetchone() == ("applied", 1)
            after = await (await conn.execute(RUN_UPDATES)).fetchone()
    assert before is not None and after is not None
    updates, hot = after[0] - before[0], after[1] - before[1]
    assert updates == 3
    assert hot == 3, f"{updates - hot} of the run's {updates} updates wrote index entries"
