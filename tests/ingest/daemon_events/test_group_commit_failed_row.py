"""An envelope whose subtransaction fails in an isolated batch comes back as its ordinal and its
SQLSTATE with every decision column NULL (db/functions/terragon_ingest_envelopes.sql), which
`repository.ingest_envelopes` reads as "decide it again alone"."""

from __future__ import annotations

import psycopg

from terragon_core import sql_columns
from terragon_ingest.daemon_events.repository import Decision


def test_a_failed_envelope_of_an_isolated_batch_is_its_ordinal_and_sqlstate(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT * FROM terragon_ingest_envelopes(%s::jsonb, true)",
            ('[{"token_hash": "not hex"}]',),
        ).fetchall()
    assert len(rows) == 1
    ordinal, sqlstate, *decision = rows[0]
    assert ordinal == 0 and sqlstate == "22023"  # invalid hexadecimal digit
    assert decision == [None] * len(sql_columns(Decision))
