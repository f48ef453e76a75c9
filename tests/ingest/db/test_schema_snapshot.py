"""`db/schema.sql` is the schema a database migrated from empty has (procrastinate keeps such a
snapshot): a reviewer reads the schema in one file, and a migration or function file that changes
it without the snapshot being regenerated fails here."""

from __future__ import annotations

import re

import psycopg

from terragon_core import CorrelationOutcome
from terragon_ingest.app import run_migrations
from terragon_ingest.db.migrate import load_functions
from terragon_ingest.db.schema import render_schema, snapshot_path


def test_migrating_an_empty_database_gives_the_snapshot(empty_url: str) -> None:
    run_migrations(empty_url)
    with psycopg.connect(empty_url) as conn:
        rendered = render_schema(conn)
    expected = snapshot_path().read_text(encoding="utf-8")
    assert rendered == expected, (
        "db/schema.sql is stale: run `uv run terragon migrate --write-schema` and commit it"
    )


def test_the_decision_answers_exactly_the_core_outcomes() -> None:
    """The SQL's outcome strings and `CorrelationOutcome` are one set: a new outcome in SQL
    without the enum (or the reverse) would be a 500 or dead code."""
    sources = {f.name: f.sql for f in load_functions()}
    batch = sources["terragon_ingest_envelopes.sql"]
    deciding = batch[: batch.index("), applying AS (")]  # after it: the apply (run statuses)
    decided = set(re.findall(r"THEN '([a-z_]+)'", deciding))
    decided |= set(re.findall(r"COALESCE\(d\.early, d\.verdict, '([a-z_]+)'\)", batch))
    verdicts = set(re.findall(r"THEN '([a-z_]+)'", sources["terragon_envelope_verdict.sql"]))
    assert decided | verdicts == {o.value for o in CorrelationOutcome}
