"""Dashboard benchmark: one full script run of the Streamlit app (`streamlit.testing`, no
browser) over a generated archive of 30 days x 1 000 repos (1.08 M minutely and 90 k daily
aggregate rows; `--quick`: 7 days x 200 repos). The first run imports Streamlit, Altair and
DuckDB, as a server does once; the best of the next three is the measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tools.bench.context import Context
from tools.bench.report import BenchResult, judge
from tools.bench.stack import REPO_ROOT, environ
from tools.bench.synthetic_archive import generate_archive

APP = REPO_ROOT / "apps/dashboard/src/terragon_dashboard/app.py"
TARGET = "≤ 2 s per script run"


@dataclass(frozen=True, slots=True)
class DashboardRuns:
    timings: list[float]
    charts: int
    failed: bool

    @property
    def best(self) -> float:
        return min(self.timings)


TIMED_RUNS = 5
"""A run takes 0.3-0.5 s on 2 cores and single runs swing by 0.1 s on a busy host (the 90-vs-30-day
ratio read 1.45 and 1.91 in two runs of one morning with 3): the best of 5."""


def timed_runs(ctx: Context, root: Path, label: str = "dashboard") -> DashboardRuns:
    """The dashboard's script over the archive at `root` alone (no live hour): a warm-up run
    (imports, first reads, as a server does once), then `TIMED_RUNS` timed runs."""
    from streamlit.testing.v1 import AppTest

    with environ(
        TERRAGON_ARCHIVE_DIR=str(root),
        TERRAGON_DASHBOARD_REFRESH_SECONDS="0",
        DATABASE_URL=None,  # the archive alone: the live hour is another read
    ):
        ctx.status(f"{label}: warm-up run")
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.run()
        timings = []
        for i in range(TIMED_RUNS):
            ctx.status(f"{label}: run {i + 1}/{TIMED_RUNS}")
            started = time.perf_counter()
            at.run()
            timings.append(time.perf_counter() - started)
        return DashboardRuns(timings, len(at.get("vega_lite_chart")), bool(at.exception))


def bench_dashboard(ctx: Context) -> list[BenchResult]:
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        return [BenchResult.skip("dashboard", "s", f"streamlit missing ({exc})", TARGET)]
    days, repos = (7, 200) if ctx.options.quick else (30, 1000)
    root = ctx.workdir / "dashboard-archive"
    ctx.status(f"dashboard: generating {days} days x {repos} repos")
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    generate_archive(root, last_day=last_day, days=days, repos=repos, rows_per_minute=25)
    runs = timed_runs(ctx, root)
    timings, charts = runs.timings, runs.charts
    best = min(timings)
    return [
        BenchResult(
            name=f"dashboard run ({days} d x {repos} repos)",
            metric="s",
            value=best,
            target=TARGET,
            met=bool(judge(best, "<=", 2.0)) and not runs.failed and charts == 3,
            details={
                "runs": [round(t, 3) for t in timings],
                "charts": charts,
                "note": f"best of {len(timings)} script runs {best:.2f} s (runs {', '.join(f'{t:.2f}' for t in timings)})",
            },
        )
    ]
