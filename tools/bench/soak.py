"""placeholder"""

from __future__ import annotations

from tools.bench.context import Context
from tools.bench.report import BenchResult


def bench_soak(ctx: Context) -> list[BenchResult]:
    return [BenchResult.skip("soak", "", "not written yet")]
