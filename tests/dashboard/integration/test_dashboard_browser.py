"""The dashboard in a real browser: `streamlit run` on 127.0.0.1 over an archive the rollup built
from seeded Postgres rows, loaded by Debian's chromium; the three trend charts must draw lines."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terragon_core import QuarantineReason
from terragon_ingest.archive import repository
from terragon_ingest.archive.rollup import rollup
from terragon_ingest.dashboard import dashboard_argv, dashboard_env
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tests.fixtures.browser import ARTIFACTS, MARKS, launch
from tests.fixtures.dashboard import FOUR_CHARTS_JS, running_dashboard

R = QuarantineReason

pytestmark = MARKS

# Per chart (Streamlit draws Vega as SVG): data points drawn, line paths, and the threshold rule.
_MARKS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"] svg')).map(svg => ({
  points: svg.querySelectorAll('g.mark-symbol path').length,
  lines: Array.from(svg.querySelectorAll('g.mark-line path')).filter(p => (p.getAttribute('d') || '').length > 10).length,
  rules: svg.querySelectorAll('g.mark-rule line, g.mark-rule path').length,
}))
"""


def _seed(url: str) -> None:
    rows: list[Row] = []
    with connect(url) as conn:
        ensure_day_partitions(conn, utc_day(-6).date(), 6)
        for offset in range(-6, 0):
            for i in range(36 + 6 * (offset + 7)):  # a busier day each day
                rows.append(
                    Row(
                        at=utc_day(offset, hour=(i * 5) % 24, minute=i % 3),
                        reason=(R.MISSING_RUN_ID, R.LEGACY_MODE, R.MISSING_END_SHA)[i % 3],
                        repo=f"acme/repo-{i % 4}",
                        user=f"user-{i % 2}",
                        provider=("docker", "e2b")[i % 2],
                    )
                )
        now = datetime.now(UTC)
        rows += [
            Row(at=now - timedelta(minutes=2 + i), reason=R.MISSING_RUN_ID, repo="acme/live")
            for i in range(12)
        ]
        insert_quarantine(conn, rows)


@pytest.fixture(name="dashboard_url")
def fx_dashboard_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    _seed(database_url)
    root = tmp_path / "archive"
    with repository.connect(database_url) as conn:
        assert rollup(conn, root, settle_seconds=60).rows["quarantine"] > 200
    env = dashboard_env(root, database_url)
    env["TERRAGON_DASHBOARD_REFRESH_SECONDS"] = "0"
    with running_dashboard(lambda port: dashboard_argv("127.0.0.1", port, root), env) as url:
        yield url


def test_three_trend_charts_render_with_data(dashboard_url: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            started = time.perf_counter()
            page.goto(os.environ.get("TERRAGON_DASHBOARD_URL", dashboard_url))
            try:
                page.wait_for_function(FOUR_CHARTS_JS, timeout=60_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            loaded = time.perf_counter() - started
            page.get_by_text("Recent quarantine rows").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            started = time.perf_counter()
            page.reload()
            page.wait_for_function(FOUR_CHARTS_JS, timeout=60_000)
            reloaded = time.perf_counter() - started
            print(
                f"browser: charts drawn {loaded:.2f}s after the first navigation (cold server), "
                f"{reloaded:.2f}s after a reload"
            )

            marks = page.evaluate(_MARKS_JS)
            assert len(marks) == 4, marks  # three trends (archive) + the live hour (Postgres)
            assert all(m["points"] >= 5 and m["lines"] >= 1 and m["rules"] >= 1 for m in marks), (
                marks
            )
            body = page.locator("body").inner_text()
            assert "No preview." not in body
            assert "Top offenders by repo" in body
            for title in ("strict_mismatch (", "legacy_mode (", "missing_end_sha ("):
                assert title in body
        finally:
            browser.close()
