"""The grouped pgbench ceiling replays what the service sends, and every replayed envelope is
applied (a ceiling made of duplicates or stale envelopes would be cheaper and false)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.fixtures.runs import CHAT, start_run
from tools.bench import grouped
from tools.bench.ingest import CLIENT_COLUMNS as COLUMNS
from tools.bench.ingest import _envelope, replay_shapes
from tools.bench.replay import load_client_table, run_pgbench
from tools.bench.stack import RunHandle


def test_batch_sizes_take_bucket_upper_bounds_and_skip_empty_ones() -> None:
    by_bucket = {"<= 1": 40, "<= 2": 0, "<= 4": 7, "<= 8": 3, "<= inf": 0}
    assert grouped.batch_sizes(by_bucket) == {1: 40, 4: 7, 8: 3}
    assert grouped.weights({1: 40, 4: 7, 8: 3}, total=100) == {1: 80, 4: 14, 8: 6}


def test_the_statement_carries_variables_for_every_per_request_value() -> None:
    statement = grouped.grouped_statement(3, _envelope, replay_shapes())
    assert "terragon_ingest_envelopes(" in statement
    for i in range(3):
        assert f'"seq": :bx_s{i}' in statement
        assert f'"dedupe_id":"g:bx_evt-{i}"' in statement
    for placeholder in ("bxrun", "bxthread", "BXGEVT"):
        assert placeholder not in statement
    assert statement.count(":bx_run") == 3 and statement.count(":bx_tokh") == 3


async def test_pgbench_applies_every_envelope_of_every_grouped_batch(
    client, database_url: str, tmp_path: Path
) -> None:
    run_id, token = await start_run(client, thread_id="grouped-1")
    run = RunHandle("grouped-1", CHAT, run_id, token)
    load_client_table(database_url, [(run_id, token, run.thread_id, run.token_sha256)], COLUMNS)
    sizes = [4, 2]
    scripts = [
        grouped.grouped_script(
            grouped.grouped_statement(size, _envelope, replay_shapes()), size, COLUMNS
        )
        for size in sizes
    ]
    result = run_pgbench(
        database_url,
        scripts,
        clients=1,
        threads=1,
        seconds=1,
        workdir=tmp_path,
        weights=[1, 1],
        seq_start=grouped.GROUPED_SEQ_BASE,
    )
    envelopes, per_second = grouped.replayed(result.output, sizes)

    assert result.failed == 0 and result.transactions > 0
    assert result.p99_ms is not None and result.p99_ms > 0  # read from pgbench's -l log
    assert envelopes >= result.transactions * 2 and per_second > 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT accepted_event_count, last_accepted_seq FROM thread_run WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    accepted, last_seq = row
    assert accepted == envelopes, (accepted, envelopes, last_seq, result.output[-300:])
    assert last_seq == grouped.GROUPED_SEQ_BASE + envelopes
