"""The dashboard in a real browser over an archive in a bucket (moto's S3 server, or
TERRAGON_TEST_S3_URL): the rollup publishes to the bucket, `streamlit run` reads it from there
(it is given only the bucket's URL, endpoint and key: no local archive exists), and Debian's
chromium must draw the trend charts from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from terragon_ingest.archive import repository
from terragon_ingest.archive.location import ObjectArchive
from terragon_ingest.archive.rollup import rollup
from terragon_ingest.dashboard import dashboard_argv, dashboard_env
from terragon_ingest.settings import ObjectStoreSettings
from tests.dashboard.integration.test_dashboard_browser import _MARKS_JS, _seed
from tests.fixtures.browser import ARTIFACTS, MARKS, launch
from tests.fixtures.dashboard import FOUR_CHARTS_JS, running_dashboard
from tools.s3_server import S3Target

pytestmark = MARKS


@pytest.fixture(name="dashboard_url")
def fx_dashboard_url(database_url: str, s3: S3Target, tmp_path: Path) -> Iterator[str]:
    _seed(database_url)
    url = f"{s3.url}/archive"
    with repository.connect(database_url) as conn:
        written = rollup(conn, ObjectArchive(url, ObjectStoreSettings()), settle_seconds=60)
    assert written.rows["quarantine"] > 200
    assert any(k.startswith("quarantine_daily/") for k in s3.child("archive").list_keys())
    env = dashboard_env(url, database_url)  # this test's environment: the bucket's endpoint, key
    env["TERRAGON_DASHBOARD_REFRESH_SECONDS"] = "0"
    env.pop("TERRAGON_ARCHIVE_DIR", None)
    # cwd: no .data/archive to fall back on
    with running_dashboard(
        lambda port: dashboard_argv("127.0.0.1", port, url), env, cwd=tmp_path
    ) as base:
        yield base


def test_trend_charts_render_from_the_bucket(dashboard_url: str, s3: S3Target) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.goto(dashboard_url)
            try:
                page.wait_for_function(FOUR_CHARTS_JS, timeout=90_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "dashboard-s3.png"), full_page=True)
            marks = page.evaluate(_MARKS_JS)
            assert len(marks) == 4, marks  # three trends (from the bucket) + the live hour
            assert all(m["points"] >= 5 and m["lines"] >= 1 for m in marks[:3]), marks
            body = page.locator("body").inner_text()
            assert f"{s3.url}/archive" in body  # the sidebar names the archive it read
            assert "Top offenders by repo" in body
            assert "acme/repo-" in body  # the offenders table holds the archived repos
        finally:
            browser.close()
