"""placeholder"""

from __future__ import annotations

from tools.bench.context import Context
from tools.bench.report import BenchResult


def bench_daemon(ctx: Context) -> list[BenchResult]:
    return [BenchResult.skip("daemon", "", "not written yet")]
