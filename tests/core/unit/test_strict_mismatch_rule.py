"""`preview.strict_mismatch` has one definition in two spellings: `METRIC_SQL` (the archive's
views and the dashboard's live query) and `is_strict_mismatch` (the Prometheus counter). They
must agree on every reason and every stored `strict` (NULL on rows older than that column)."""

from __future__ import annotations

import itertools

import duckdb

from terragon_core import METRIC_SQL, MetricName, QuarantineReason, is_strict_mismatch


def test_metric_sql_and_prometheus_agree_on_every_reason_and_strict() -> None:
    cases = list(itertools.product([r.value for r in QuarantineReason], [True, False, None]))
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE q (reason VARCHAR, strict BOOLEAN)")
    con.executemany("INSERT INTO q VALUES (?, ?)", cases)
    rows = con.execute(f"SELECT reason, strict, {METRIC_SQL} FROM q").fetchall()
    from_sql = {
        (reason, strict): metric == MetricName.STRICT_MISMATCH for reason, strict, metric in rows
    }
    from_python = {case: is_strict_mismatch(*case) for case in cases}
    assert from_sql == from_python
    assert {case for case, counted in from_python.items() if counted} == {
        ("missing_run_id", True),
        ("missing_run_id", False),
        ("missing_run_id", None),
        ("mismatch", True),
    }
