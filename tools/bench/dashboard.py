"""Dashboard benchmark over a generated archive of 30 days x 1 000 repos (1.08 M minutely and
90 k daily aggregate rows, 43 k quarantine rows; `--quick`: 7 days x 200 repos) in the rollup's
layout: closed days compacted into one file per dataset, the last (open) day in hour files.

- **the page in Chromium** (`dashboard_page.py`): `streamlit run` as `terragon dashboard` starts
  it, with a live hour from an empty PostgreSQL; first render (a new browser's first navigation,
  once the server has warmed up), reload, a filter change (pick one reason; a query the page has
  not run), sign-in to drawn (`TERRAGON_DASHBOARD_AUTH=password`: from the click on "Sign in"),
  and the first render from an S3 archive (moto's server, the same files) as a ratio to the
  local one of the same run. Details: the cold start (navigation as soon as the server is
  healthy, before its warm-up), each reload and filter change, the second visitor.
- **the script alone** (`streamlit.testing`, no browser): a warm-up run, then the best of five.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tools.bench.context import Context
from tools.bench.report import BenchResult, judge
from tools.bench.stack import REPO_ROOT, environ
from tools.bench.synthetic_archive import generate_rollup_archive

APP = REPO_ROOT / "apps/dashboard/src/terragon_dashboard/app.py"
TARGET = "≤ 2 s per script run"
PAGE_TARGETS = {"first": 3.0, "reload": 2.0, "filter": 1.0, "s3_ratio": 2.0}
"""Issue 24 on this 2-core machine, quiet: first render ≤ 3 s, reload ≤ 2 s, filter change ≤ 1 s,
S3 first render ≤ 2x the local one."""
PASSWORD = "bench sign-in password"
FILTER_REASONS = ("missing_run_id", "legacy_mode", "missing_end_sha")


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


def _archive(ctx: Context, root: Path, days: int, repos: int) -> int:
    """The archive as the rollup leaves it today: every closed day compacted, today in hours."""
    from terragon_ingest.archive import files
    from terragon_ingest.archive.location import LocalArchive

    today = datetime.now(UTC).date()
    generate_rollup_archive(root, last_day=today, days=days, repos=repos, rows_per_minute=25)
    ctx.status("dashboard: compacting the closed days")
    con = files.connect()
    try:
        for back in range(1, days):
            for dataset in files.COMPACTED:
                files.compact_day(con, LocalArchive(root), dataset, today - timedelta(days=back))
    finally:
        con.close()
    return sum(1 for _ in root.rglob("*.parquet"))


def _upload(root: Path, url: str) -> None:
    import obstore

    from terragon_ingest.objects import open_store
    from terragon_ingest.settings import ObjectStoreSettings

    store = open_store(url, ObjectStoreSettings())
    for path in sorted(root.rglob("*.parquet")):
        obstore.put(store, str(path.relative_to(root)), path)


def _page_results(ctx: Context, root: Path, label: str) -> list[BenchResult]:
    from terragon_ingest.dashboard import dashboard_env
    from tools.bench import dashboard_page as page
    from tools.s3_server import start_bucket

    database_url = ctx.stack.fresh_database("dashboard_bench") if ctx.stack.pg else None
    base = {"TERRAGON_DASHBOARD_REFRESH_SECONDS": "0"}
    env = dashboard_env(root, database_url) | base
    work = ctx.workdir / "dashboard-page"
    work.mkdir(exist_ok=True)
    with page.chromium() as browser:
        ctx.status("dashboard page: a minimal Streamlit page (the floor)")
        with page.served(root, env, work, argv=page.minimal_argv) as server:
            floor = page.measure_page(browser, server.url)
        ctx.status("dashboard page: cold start")
        with page.served(root, env, work) as server:
            cold = page.measure_page(browser, server.url, reloads=0)
        ctx.status("dashboard page: first render, reloads, filter changes")
        with page.served(root, env, work) as server:
            warm_seconds = server.wait_warm()
            local = page.measure_page(browser, server.url, reasons=FILTER_REASONS)
        ctx.status("dashboard page: sign-in")
        signed = env | {
            "TERRAGON_DASHBOARD_AUTH": "password",
            "TERRAGON_DASHBOARD_PASSWORD": PASSWORD,
        }
        with page.served(root, signed, work) as server:
            server.wait_warm()
            sign_ins = [page.measure_sign_in(browser, server.url, PASSWORD) for _ in range(3)]
        ctx.status("dashboard page: S3 archive (moto)")
        s3_server, bucket = start_bucket(work)
        try:
            url = f"{bucket.url}/archive"
            with environ(**bucket.env()):
                _upload(root, url)
                s3_env = dashboard_env(url, database_url) | base
            s3_env.pop("TERRAGON_ARCHIVE_DIR", None)
            with page.served(url, s3_env, work) as server:
                s3_warm = server.wait_warm()
                s3 = page.measure_page(browser, server.url, reloads=1)
        finally:
            s3_server.stop()
    sign_in = statistics.median(sign_ins)
    ratio = s3.first / local.first
    fmt = ", ".join

    def secs(values: list[float]) -> str:
        return fmt(f"{v:.2f}" for v in values)

    return [
        BenchResult(
            name=f"dashboard page: first render ({label})",
            metric="s",
            value=local.first,
            ceiling_name="minimal Streamlit page",
            ceiling=floor.second_visitor,  # its script's imports done, as ours are warmed
            ratio=local.first / floor.second_visitor,
            target=f"≤ {PAGE_TARGETS['first']:g} s",
            met=local.first <= PAGE_TARGETS["first"],
            details={
                "coldStart": round(cold.first, 3),
                "warmUpSeconds": warm_seconds,
                "secondVisitor": round(local.second_visitor, 3),
                "note": (
                    f"a new browser's first navigation to a warmed server {local.first:.2f} s "
                    f"(the server's warm-up took {warm_seconds:.1f} s); right after the server "
                    f"answered, before its warm-up: {cold.first:.2f} s; a second browser "
                    f"{local.second_visitor:.2f} s"
                ),
            },
        ),
        BenchResult(
            name="dashboard page: reload",
            metric="s",
            value=local.reload,
            ceiling_name="minimal Streamlit page",
            ceiling=floor.reload,
            ratio=local.reload / floor.reload,
            target=f"≤ {PAGE_TARGETS['reload']:g} s",
            met=local.reload <= PAGE_TARGETS["reload"],
            details={"runs": local.reloads, "note": f"median of {secs(local.reloads)} s"},
        ),
        BenchResult(
            name="dashboard page: filter change (one reason)",
            metric="s",
            value=local.filter,
            target=f"≤ {PAGE_TARGETS['filter']:g} s",
            met=local.filter <= PAGE_TARGETS["filter"],
            details={
                "runs": local.filters,
                "note": f"median of {secs(local.filters)} s ({fmt(FILTER_REASONS)})",
            },
        ),
        BenchResult(
            name="dashboard page: sign-in to drawn",
            metric="s",
            value=sign_in,
            target="(reported)",
            details={"runs": sign_ins, "note": f"median of {secs(sign_ins)} s, new browsers"},
        ),
        BenchResult(
            name="dashboard page: first render from S3 (moto)",
            metric="s",
            value=s3.first,
            ceiling_name="local first render",
            ceiling=local.first,
            ratio=ratio,
            target=f"≤ {PAGE_TARGETS['s3_ratio']:g}x local",
            met=ratio <= PAGE_TARGETS["s3_ratio"],
            details={
                "reloads": s3.reloads,
                "warmUpSeconds": s3_warm,
                "note": (
                    f"{s3.first:.2f} s vs {local.first:.2f} s locally (x{ratio:.2f}); its reload "
                    f"{secs(s3.reloads)} s; the server's warm-up (listing, mirror of the "
                    f"aggregates, default queries) {s3_warm:.1f} s"
                ),
            },
        ),
    ]


def bench_dashboard(ctx: Context) -> list[BenchResult]:
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        return [BenchResult.skip("dashboard", "s", f"streamlit missing ({exc})", TARGET)]
    days, repos = (7, 200) if ctx.options.quick else (30, 1000)
    root = ctx.workdir / "dashboard-archive"
    ctx.status(f"dashboard: generating {days} days x {repos} repos")
    count = _archive(ctx, root, days, repos)
    label = f"{days} d x {repos} repos, {count} files"
    results: list[BenchResult] = []
    try:
        import playwright  # noqa: F401

        from tools.bench.dashboard_page import CHROMIUM

        if not CHROMIUM.exists():
            raise ImportError(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    except ImportError as exc:
        results.append(BenchResult.skip("dashboard page", "s", f"no browser ({exc})"))
    else:
        results += _page_results(ctx, root, label)
    runs = timed_runs(ctx, root)
    timings, charts = runs.timings, runs.charts
    best = min(timings)
    return [
        *results,
        BenchResult(
            name=f"dashboard script run ({label})",
            metric="s",
            value=best,
            target=TARGET,
            met=bool(judge(best, "<=", 2.0)) and not runs.failed and charts == 3,
            details={
                "runs": [round(t, 3) for t in timings],
                "charts": charts,
                "note": f"best of {len(timings)} script runs {best:.2f} s (runs {', '.join(f'{t:.2f}' for t in timings)})",
            },
        ),
    ]
