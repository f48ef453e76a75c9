"""The apply's per-message dedupe reads one index entry per incoming message, however long the run
and whatever the session's cached plan was built from (db/functions/terragon_ingest_envelope.sql; first fixed in migration 2026-11-26-2000).

The earlier body let PostgreSQL run the check as a hashed subplan when the session first planned
it against a small run_message (a fresh database, a new deploy): every later envelope then read all
of its run's messages. Here the function is planned on an empty table, the run grows by 3 000
messages in the same session, and the next envelope's reads of run_message are counted
(`pg_stat_xact_user_tables`, this transaction only).
"""

from __future__ import annotations

import json

import psycopg

from tests.ingest.integration.test_daemon_event_support import start_run

APPLY = """
SELECT outcome, applied_messages FROM terragon_ingest_envelope(
    p_token_hash => NULL, p_token_run_id => %(run)s, p_thread_id => 'thread-1',
    p_thread_chat_id => 'chat-1', p_run_id => %(run)s, p_dedupe_id => %(event)s, p_seq => %(seq)s,
    p_payload_version => 2::smallint, p_fields_valid => true, p_within_limits => true,
    p_messages => %(messages)s::jsonb, p_trace_id => 'trace', p_terminal => false,
    p_failure => false, p_end_sha => NULL, p_inputs_ready => false, p_diff_source => NULL,
    p_diff_source_context => NULL, p_legacy_row => NULL, p_ui_outcome => NULL,
    p_ui_blocking_reason => NULL)
"""
RUN_MESSAGE_READS = """
SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
FROM pg_stat_xact_user_tables WHERE relname = 'run_message'
"""
GROWN = 3_000


def _messages(*uuids: str) -> str:
    return json.dumps([{"type": "assistant", "uuid": u, "message": {"text": u}} for u in uuids])


async def test_dedupe_probe_reads_per_message_not_per_run(client, database_url: str) -> None:
    run_id, _ = await start_run(client)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # Planned (and cached for this session) while the run has no messages at all.
        first = await (
            await conn.execute(
                APPLY, {"run": run_id, "event": "e1", "seq": 1, "messages": _messages("m-0")}
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
                    APPLY,
                    {
                        "run": run_id,
                        "event": "e2",
                        "seq": 2,
                        "messages": _messages("m-new", "bulk-7", "m-new"),
                    },
                )
            ).fetchone()
            reads = await (await conn.execute(RUN_MESSAGE_READS)).fetchone()
    assert row == ("applied", 1)
    assert reads is not None
    # A probe per message reads at most the one matching entry; the hashed plan read all 3 001.
    assert reads[0] <= 3, f"the apply read {reads[0]} run_message rows for a 3-message envelope"
