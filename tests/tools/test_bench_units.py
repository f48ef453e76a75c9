"""The benchmark tool's pure parts: statement-log parsing, pgbench templating, wrk config,
the results table. Fast, no servers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

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


def _window(p99: float, rss_mib: float, rows: int, table_mib: float, db_mib: float) -> dict:
    return {
        "endSeconds": 60.0,
        "rps": 700.0,
        "p99Ms": p99,
        "errors": 0,
        "rssBytes": int(rss_mib * 2**20),
        "rows": rows,
        "tableBytes": int(table_mib * 2**20),
        "deadRows": 0,
        "dbBytes": int(db_mib * 2**20),
    }


def test_soak_slots_are_the_epoch_aligned_boundaries_inside_the_soak() -> None:
    from tools.bench.soak import expected_slots

    # 16:59:30 → 17:03:00 (epoch 1796662770 = 2026-12-07 16:59:30 UTC): four boundaries, the end
    # one included, the start excluded.
    start = datetime(2026, 12, 7, 16, 59, 30, tzinfo=UTC).timestamp()
    end = datetime(2026, 12, 7, 17, 3, tzinfo=UTC).timestamp()
    slots = expected_slots(60, start, end)
    assert [datetime.fromtimestamp(s, UTC).strftime("%H:%M:%S") for s in slots] == [
        "17:00:00",
        "17:01:00",
        "17:02:00",
        "17:03:00",
    ]
    assert expected_slots(60, end, end + 59) == []  # a boundary exactly at the start is before it


def test_soak_slot_check_names_missing_duplicated_failed_and_unfinished_slots() -> None:
    from tools.bench.soak import SlotRow, slots_on_schedule

    start, end = 1_000_010.0, 1_000_250.0  # boundaries 1000020, ..., 1000200 (interval 60)
    due = [1_000_020.0, 1_000_080.0, 1_000_140.0, 1_000_200.0]
    rows = [SlotRow("sweep", s, True, False) for s in due]
    rows += [SlotRow("rollup", s, True, False) for s in due[:2]]  # 3rd missing
    rows += [SlotRow("rollup", due[3], True, True)]  # failed
    rows += [SlotRow("rollup", due[0], True, False)]  # claimed twice
    rows += [SlotRow("retention", s, s != due[3], None if s == due[3] else False) for s in due]
    rows += [SlotRow("sweep", 999_960.0, True, True)]  # before the soak: not judged
    got = slots_on_schedule(rows, ["sweep", "rollup", "retention", "partitions"], 60, start, end)
    assert got["sweep"] == {
        "expected": 4,
        "ran": 4,
        "missing": [],
        "duplicated": [],
        "failed": [],
        "unfinished": [],
    }
    assert got["rollup"]["ran"] == 3
    assert got["rollup"]["missing"] == [due[2]]
    assert got["rollup"]["failed"] == [due[3]]
    assert got["rollup"]["duplicated"] == [due[0]]
    assert got["retention"]["unfinished"] == [due[3]]
    assert got["partitions"]["missing"] == due


def test_soak_verdicts_from_the_first_and_last_window() -> None:
    from tools.bench.soak import SlotRow, bytes_per_row, growth, ratio, slots_on_schedule, verdicts

    assert ratio(20.0, 29.0) == 1.45
    assert ratio(0.0, 5.0) is None
    assert growth(400.0, 436.0) == 0.09
    assert bytes_per_row(300 * 2**20, 1_000_000) == 314.5728
    ok_slots = slots_on_schedule(
        [SlotRow("sweep", 120.0, True, False), SlotRow("sweep", 180.0, True, False)],
        ["sweep"],
        60,
        100,
        200,
    )
    # 42k rows in 30 MiB (749 B/row) → 1.26M rows in 1100 MiB (915 B/row): 1.22 x, over 1.2.
    first = _window(p99=20.0, rss_mib=400, rows=42_000, table_mib=30, db_mib=40)
    last = _window(p99=29.0, rss_mib=436, rows=1_260_000, table_mib=1100, db_mib=1130)
    got = {v.name: v for v in verdicts([first, last], ok_slots)}
    assert got["p99 drift"].met and "1.45 x" in got["p99 drift"].line
    assert got["memory"].met and "+9.0%" in got["memory"].line
    assert not got["bytes per row"].met and "749 → 915 = 1.22 x" in got["bytes per row"].line
    # the database grew 1090 MiB for 1,218,000 rows written: 938 B per row
    assert "938 B per row written" in got["bytes per row"].line
    assert got["job slots"].met and "sweep 2/2" in got["job slots"].line
    # 31 ms p99 (1.55 x), RSS +10 % exactly and a failed slot each fail their verdict.
    worse = _window(p99=31.0, rss_mib=440, rows=1_260_000, table_mib=1000, db_mib=1030)
    failed = slots_on_schedule([SlotRow("sweep", 120.0, True, True)], ["sweep"], 60, 100, 200)
    got = {v.name: v for v in verdicts([first, worse], failed)}
    assert not got["p99 drift"].met
    assert not got["memory"].met
    assert got["bytes per row"].met  # 832 B/row: 1.11 x
    assert not got["job slots"].met
    assert "'failed': 1" in got["job slots"].line and "'missing': 1" in got["job slots"].line


def test_soak_job_interval_fits_a_few_slots_in_a_short_soak() -> None:
    from tools.bench.soak import job_interval

    assert job_interval(1800) == 30.0
    assert job_interval(120) == 30.0
    assert job_interval(60) == 15.0
    assert job_interval(30) == 7.0
    assert job_interval(10) == 5.0


def test_soak_memory_is_measured_after_every_process_first_archiving_rollup() -> None:
    """The rollup's first Parquet write in a process is a one-off RSS step: the baseline is the
    first window ending after the last process's first rollup slot past the side load's first
    archivable minute (+ one interval). Rollups before that minute, or of other jobs, do not
    count; with none at all the baseline is the first window."""
    from tools.bench.soak import SlotRow, memory_baseline

    started = 1_800_000_000.0  # a minute boundary: the first minute is archivable at +120 s
    windows = [{"endSeconds": end} for end in (60, 120, 180, 240, 300, 360)]
    rollups = [
        SlotRow("archive_rollup", started + 30, True, False, "h:1"),  # too early: no rows yet
        SlotRow("archive_rollup", started + 150, True, False, "h:1"),  # h:1's first with data
        SlotRow("maintenance_sweep", started + 300, True, False, "h:3"),  # not the rollup
        SlotRow("archive_rollup", started + 210, True, False, "h:2"),  # h:2's, the later one
        SlotRow("archive_rollup", started + 270, True, False, "h:2"),
    ]
    assert memory_baseline(windows, rollups, started, 30.0) == 3  # ends at 240 >= 210 + 30
    assert memory_baseline(windows, rollups[:2], started, 30.0) == 2  # 180 >= 150 + 30
    assert memory_baseline(windows, rollups[:1], started, 30.0) == 0
    late = [SlotRow("archive_rollup", started + 400, True, False, "h:9")]
    assert memory_baseline(windows, late, started, 30.0) == 0  # never before the last window


def test_grouped_client_rows_give_each_client_its_own_runs() -> None:
    from tools.bench import grouped

    runs = [RunHandle(f"t{i}", "chat-1", f"r{i}", f"tok{i}") for i in range(6)]
    rows = grouped.client_rows(runs, 2, 3, lambda r: (r.run_id,))
    assert grouped.client_columns(2) == [
        "bx_run0",
        "bx_thr0",
        "bx_tokh0",
        "bx_run1",
        "bx_thr1",
        "bx_tokh1",
    ]
    assert [row[0] for row in rows] == ["r0", "r3"]  # the one-envelope scripts' run: run 0
    assert rows[1][1:4] == ("r3", "t3", runs[3].token_sha256)
    assert rows[1][7:] == ("r5", "t5", runs[5].token_sha256)
    assert all(len(row) == 1 + 3 * 3 for row in rows)
    with pytest.raises(ValueError, match="need 9 runs, got 6"):
        grouped.client_rows(runs, 3, 3, lambda r: (r.run_id,))


def test_grouped_statement_puts_each_envelope_on_another_run_with_the_clients_seq() -> None:
    import re

    from tools.bench import grouped
    from tools.bench.ingest import _envelope, replay_shapes

    statement = grouped.grouped_statement(5, _envelope, replay_shapes())
    for name in ("run", "thr", "tokh"):
        assert sorted(set(re.findall(rf":bx_{name}(\d+)", statement))) == list("01234")
    assert statement.count('"seq": :bx_seq,') == 5
    script = grouped.grouped_script(statement, ["bx_run", *grouped.client_columns(5)])
    assert "\\set bx_seq :bx_seq + 1" in script  # one step per transaction, every run
    assert "SELECT bx_run, bx_run0, bx_thr0, bx_tokh0, bx_run1," in script


def _wrk(rps: float, p99: float, cpu: dict[str, float], seconds: float = 10.0):
    from tools.bench.wrk import WrkResult

    return WrkResult(
        requests=round(rps * seconds),
        seconds=seconds,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=p99,
        max_ms=p99,
        errors={},
        generator_cpu=0.1,
        server_cpu=cpu,
        wall=seconds + 0.5,
    )


def _pgbench(tps: float, p99: float | None):
    from tools.bench.replay import PgbenchResult

    return PgbenchResult(tps, 10.0, round(tps * 10), 0, "", p99)


def test_cpu_per_applied_envelope_is_cpu_seconds_over_applied_envelopes() -> None:
    from tools.bench.ingest import ApplyRound, cpu_ms_per_envelope

    assert cpu_ms_per_envelope(2.0, 10_000) == 0.2
    assert cpu_ms_per_envelope(2.0, 0) is None
    assert cpu_ms_per_envelope(None, 10) is None
    # 1.5 cores of the service and 0.8 of PostgreSQL over 10.5 s of wall, 21,000 applied
    service = _wrk(2000, 40.0, {"server": 1.5, "postgres": 0.8})
    assert service.cpu_seconds("server") == 15.75
    assert service.cpu_seconds("nothing") is None
    one = ApplyRound(service, 21_000, _pgbench(1000, 32.0), 10_500, 2.1)
    assert one.service_cpu_ms == 0.75
    assert abs((one.postgres_cpu_ms or 0) - 0.4) < 1e-12
    assert one.pgbench_postgres_cpu_ms == 0.2
    assert one.ratio == 2.0 and one.p99_ratio == 1.25
    d = one.as_dict()
    assert d["serviceCpuMsPerEnvelope"] == 0.75 and d["pgbenchPostgresCpuMsPerEnvelope"] == 0.2
    assert d["p99Ratio"] == 1.25 and d["appliedEnvelopes"] == 21_000
    nothing = ApplyRound(service, 0, _pgbench(1000, None), 0, 2.1)
    assert nothing.service_cpu_ms is None and nothing.p99_ratio is None


def test_the_worst_p99_round_is_the_highest_ratio_not_the_highest_p99() -> None:
    from tools.bench.ingest import ApplyRound, worst_p99_round

    cpu = {"server": 1.0, "postgres": 1.0}
    slow_both = ApplyRound(_wrk(1000, 60.0, cpu), 1, _pgbench(900, 55.0), 1, 1.0)  # 1.09
    tail = ApplyRound(_wrk(1000, 45.0, cpu), 1, _pgbench(900, 30.0), 1, 1.0)  # 1.5
    unknown = ApplyRound(_wrk(1000, 90.0, cpu), 1, _pgbench(900, None), 1, 1.0)
    assert worst_p99_round([slow_both, tail, unknown]) is tail
    assert worst_p99_round([unknown]) is None
