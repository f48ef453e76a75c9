"""The benchmark tool's pure parts: statement-log parsing, pgbench templating, wrk config,
the results table. Fast, no servers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from tools.bench.fairness import fairness_results, percentile
from tools.bench.replay import inline_parameters, parse_log, pgbench_script, templatize
from tools.bench.report import BenchResult, judge, markdown
from tools.bench.stack import REPO_ROOT, RunHandle
from tools.bench.wrk import lua_config

LOG = """\
2026-11-26 18:00:00.001 UTC [100] LOG:  statement: BEGIN
2026-11-26 18:00:00.002 UTC [100] LOG:  execute <unnamed>: SELECT *
\tFROM terragon_ingest_envelope($1, $2, $10)
2026-11-26 18:00:00.003 UTC [100] DETAIL:  parameters: $1 = 'run-1', $2 = 'it''s {"seq":987654321}', $10 = NULL
2026-11-26 18:00:00.004 UTC [200] LOG:  execute _pg3_0: SELECT 1 WHERE $1 = 'x'
2026-11-26 18:00:00.005 UTC [200] DETAIL:  parameters: $1 = '5'
2026-11-26 18:00:00.006 UTC [100] LOG:  statement: COMMIT
"""


def test_parse_log_inlines_parameters_and_keeps_order_per_backend() -> None:
    captured = parse_log(LOG, exclude_pids={200})
    assert captured.statements == [
        "BEGIN",
        "SELECT *\nFROM terragon_ingest_envelope('run-1', 'it''s {\"seq\":987654321}', NULL)",
        "COMMIT",
    ]
    assert captured.order == [100, 100, 100]


def test_inline_parameters_does_not_confuse_1_and_10() -> None:
    assert inline_parameters("f($1, $10)", {1: "'a'", 10: "'b'"}) == "f('a', 'b')"


def test_templatize_uses_variables_and_keeps_json_colons_apart() -> None:
    sql = (
        'SELECT f(\'run-1\', \'{"seq":987654321,"eventId":"CAPEVT0000"}\', '
        "'0f8fad5b-d9cb-469f-a165-70867728950e')"
    )
    [out] = templatize([sql], {"run-1": ":bx_run", "987654321": ":bx_seq", "CAPEVT0000": ":bx_evt"})
    assert "':bx_run'" in out
    assert '"seq": :bx_seq' in out  # not "seq"::bx_seq, which pgbench would skip as a cast
    assert '"eventId":":bx_evt"' in out
    assert "'0000:bx_cid-0000-4000-8000-:bx_u'" in out
    assert out.endswith(";")


def test_pgbench_script_loads_client_values_once() -> None:
    script = pgbench_script(["SELECT 1;"], ["bx_run", "bx_tok"])
    assert "\\if :bx_loaded = 0" in script
    assert "SELECT bx_run, bx_tok FROM bench_client WHERE client = :client_id \\gset" in script
    assert script.strip().endswith("SELECT 1;")


def test_lua_config_quotes_values() -> None:
    run = RunHandle('thread-"1', "chat", "run-1", "tdt_x")
    config = lua_config("apply", "/api/daemon-event", [run], 3, delay_ms=5)
    assert 'thr="thread-\\"1"' in config
    assert "phase=3" in config and "delay_ms=5" in config


def test_judge_and_markdown_table() -> None:
    assert judge(0.5, ">=", 0.45) is True
    assert judge(2.5, "<=", 2.0) is False
    assert judge(None, ">=", 1) is None
    results = [
        BenchResult("ingest apply", "envelopes/s", 100, "pgbench", 200, 0.5, "≥ 0.45", True),
        BenchResult.skip("daemon relay", "messages/s", "bundle not built"),
    ]
    table = markdown(results, started=datetime(2026, 1, 1, tzinfo=UTC), command="x")
    assert "| ingest apply | 100 envelopes/s | 200 (pgbench) | 0.5 | ≥ 0.45 | yes |" in table
    assert "skipped: bundle not built" in table


def test_bench_and_chaos_help_run() -> None:
    for module in ("tools.bench", "tools.chaos"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "usage:" in proc.stdout


def test_batch_distribution_is_the_phase_delta_of_the_cumulative_buckets() -> None:
    from tools.bench.ingest import batch_distribution

    before: dict[str, float] = {"1.0": 5, "2.0": 5, "4.0": 6, "+Inf": 6, "sum": 8, "count": 6}
    after: dict[str, float] = {"1.0": 7, "2.0": 9, "4.0": 12, "+Inf": 12, "sum": 26, "count": 12}
    got = batch_distribution(before, after)
    assert got == {
        "statements": 6,
        "meanEnvelopesPerStatement": 3.0,
        "byBatchSize": {"<= 1": 2, "<= 2": 2, "<= 4": 2, "<= inf": 0},
    }


def test_fairness_compares_the_victims_loaded_percentiles_with_its_unloaded_ones() -> None:
    samples = [float(i) for i in range(1, 101)]  # 1..100 ms
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    loaded = [3 * s for s in samples[:-1]] + [600.0]  # median 150 (3x), p99 297 (3x)
    median, p99 = fairness_results(samples, loaded)
    assert (median.value, median.ceiling, median.ratio, median.met) == (150.0, 50.0, 3.0, True)
    assert (p99.value, p99.ceiling, p99.ratio, p99.met) == (297.0, 99.0, 3.0, True)
    slow = [s + 200 for s in samples]
    median, p99 = fairness_results(samples, slow)
    assert median.met is False  # 250 / 50 = 5x
    assert p99.met is True  # 299 / 99 ≈ 3.0x
