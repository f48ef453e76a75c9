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
    assert statement.count('"seq": :bx_seq,') == 3  # every envelope: the client's counter
    for i in range(3):
        assert f'"dedupe_id":"g:bx_evt-{i}"' in statement
        # envelope i is run i's: its own run, thread and token hash
        assert f'"run_id":":bx_run{i}"' in statement
        assert f'"thread_id":":bx_thr{i}"' in statement
        assert f'"token_hash":":bx_tokh{i}"' in statement
        assert statement.count(f":bx_run{i}") == 1
    for placeholder in ("bxrun", "bxthread", "BXGEVT", ':bx_run"', ':bx_tokh"'):
        assert placeholder not in statement


async def test_pgbench_applies_every_envelope_of_every_grouped_batch_each_of_another_run(
    client, database_url: str, tmp_path: Path
) -> None:
    k = 4  # runs per client: the largest batch
    runs = []
    for i in range(k):
        run_id, token = await start_run(client, thread_id=f"grouped-{i}")
        runs.append(RunHandle(f"grouped-{i}", CHAT, run_id, token))
    columns = COLUMNS + grouped.client_columns(k)
    rows = grouped.client_rows(
        runs, 1, k, lambda r: (r.run_id, r.token, r.thread_id, r.token_sha256)
    )
    load_client_table(database_url, rows, columns)
    sizes = [4, 2]
    scripts = [
        grouped.grouped_script(grouped.grouped_statement(size, _envelope, replay_shapes()), columns)
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
        found = dict(
            conn.execute(
                "SELECT run_id, (accepted_event_count, last_accepted_seq) FROM thread_run"
                " WHERE run_id = ANY(%s)",
                ([r.run_id for r in runs],),
            ).fetchall()
        )
    by_run = [found[r.run_id] for r in runs]
    accepted = [int(a) for a, _seq in by_run]
    assert sum(accepted) == envelopes, (by_run, envelopes, result.output[-300:])
    # Runs 0 and 1 are in every batch, runs 2 and 3 only in the batches of four.
    assert accepted[0] == accepted[1] == result.transactions
    batches_of_four = (envelopes - 2 * result.transactions) // 2
    assert accepted[2] == accepted[3] == batches_of_four
    # The client's counter advanced once per transaction; runs 0 and 1 saw every value.
    assert int(by_run[0][1]) == int(by_run[1][1]) == grouped.GROUPED_SEQ_BASE + result.transactions
