"""The apply's per-message dedupe reads one index entry per incoming message, however long the run
and whatever the session's cached plan was built from (db/functions/terragon_ingest_envelope.sql; first fixed in migration 2026-11-26-2000).

The earlier body let PostgreSQL run the check as a hashed subplan when the session first planned
it against a small run_message (a fresh database, a new deploy): every later envelope then read all
of its run's messages. Here the function is planned on an empty table, the run grows by 3 000
messages in the same session, and the next envelope's reads of run_message are counted
(`pg_stat_xact_user_tables`, this transaction only).
"""

from __future__ import annotations

import psycopg

from tests.fixtures.daemon_events import APPLY_SQL, messages_json
from tests.fixtures.runs import start_run

RUN_MESSAGE_READS = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
FROM pg_stat_xact_user_tables WHERE relname = 'run_message'
"""
GROWN = 3_000


async def test_dedupe_probe_reads_per_message_not_per_run(client, database_url: str) -> None:
    run_id, _ = await start_run(client)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # Planned (and cached for this session) while the run has no messages at all.
        first = await (
            await conn.execute(
                APPLY_SQL,
                {"run": run_id, "event": "e1", "seq": 1, "messages": messages_json("m-0")},
            )
        ).fetchone()
        assert first == ("applied", 1)
        await conn.execute(
            "INSERT INTO run_message (run_id, ordinal, event_id, message_uuid, message)"
            " SELECT %s, 1 + g, 'bulk', 'bulk-' || g, '{}'::jsonb FROM generate_series(1, %s) g",
            (run_id, GROWN),
        )
        await conn.execute(
            "UPDATE thread_run SET accepted_message_count = accepted_message_count + %s"
            " WHERE run_id = %s",
            (GROWN, run_id),
        )
        await conn.execute("ANALYZE run_message")
        async with conn.transaction():
            # One new uuid, one the run already has (stored far back), one repeated in the batch.
            row = await (
                await conn.execute(
                    APPLY_SQL,
                    {
                        "run": run_id,
                        "event": "e2",
                        "seq": 2,
                        "messages": messages_json("m-new", "bulk-7", "m-new"),
                    },
                )
            ).fetchone()
            reads = await (await conn.execute(RUN_MESSAGE_READS)).fetchone()
    assert row == ("applied", 1)
    assert reads is not None
    # A probe per message reads at most the one matching entry; the hashed plan read all 3 001.
    assert reads[0] <= 3, f"the apply read {reads[0]} run_message rows for a 3-message envelope"
