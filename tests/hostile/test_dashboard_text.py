"""Sandbox text in the dashboard is shown as text (CONTRACT §7): a repo name, a login and a
payload prefix carrying markdown (a link, a directive, HTML), an escape sequence and a
right-to-left override reach the page with none of it interpreted and every control character
written out (`\\x1b`), in the markdown lines, the tables and the chart legends.

The page runs under `streamlit.testing` over real PostgreSQL rows (the live hour)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from terragon_core import QuarantineReason
from terragon_ingest.dashboard import dashboard_argv, dashboard_env
from tests.dashboard.seed import Row, connect, insert_quarantine
from tests.fixtures.browser import launch, needs_chromium
from tests.fixtures.dashboard import running_dashboard

APP = Path(__file__).parents[2] / "apps/dashboard/src/terragon_dashboard/app.py"
ESC, RLO = "\x1b", "\u202e"
REPO = (
    f"acme/[click me](http://evil.example) :red[alarm] <b>x</b> {ESC}[8mhidden{ESC}[0m {RLO}fdp.exe"
)
USER = f"user-{ESC}]8;;http://evil.example{ESC}\\link{ESC}]8;;{ESC}\\"
PREFIX = f'{{"note": "{ESC}[2J{ESC}[31mred {RLO}txt.exe"}}'


def _seed(database_url: str) -> None:
    row = Row(
        at=datetime.now(UTC) - timedelta(minutes=2),
        reason=QuarantineReason.MISSING_END_SHA,
        repo=REPO,
        user=USER,
    )
    with connect(database_url) as conn:
        insert_quarantine(conn, [row])
        conn.execute(
            "UPDATE daemon_event_quarantine SET payload_prefix_2k = %s WHERE id = %s",
            (PREFIX, row.id),
        )


@pytest.fixture(name="page")
def fx_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> AppTest:
    _seed(database_url)
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("TERRAGON_DASHBOARD_AUTH", raising=False)
    get_option = streamlit.get_option
    monkeypatch.setattr(  # served on loopback: payload prefixes shown
        streamlit,
        "get_option",
        lambda key: "127.0.0.1" if key == "server.address" else get_option(key),
    )
    (tmp_path / "archive").mkdir()
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def _raw(value: Any) -> bool:
    """True if `value` carries a control or override character unescaped."""
    return any(ch in str(value) for ch in (ESC, RLO, "\x07"))


def test_the_row_line_shows_the_repo_name_as_text(page: AppTest) -> None:
    (line,) = [m.value for m in page.markdown if "inspect it" in m.value]
    assert not _raw(line), line
    # in a code span: nothing in it is linked, styled or typeset (the browser test below; a
    # backslash-escaped `http\:\/\/…` is still turned into a link by Streamlit's markdown)
    assert "`acme/[click me](http://evil.example) :red[alarm] <b>x</b> \\x1b[8mhidden" in line
    assert "\\u202efdp.exe`" in line, line


def test_the_rows_table_shows_control_characters_written_out(page: AppTest) -> None:
    (rows,) = [d.value for d in page.dataframe if "repo_full_name" in d.value.columns]
    shown = rows.iloc[0]
    for column in ("repo_full_name", "user_id", "payload_prefix_2k"):
        if column in rows.columns:
            assert not _raw(shown[column]), (column, shown[column])
    assert "\\x1b[8mhidden" in shown["repo_full_name"]
    assert (
        "\\x1b[2J" in shown["payload_prefix_2k"] and "\\u202etxt.exe" in shown["payload_prefix_2k"]
    )


def test_the_live_chart_legend_shows_control_characters_written_out(page: AppTest) -> None:
    specs = [json.loads(chart.proto.spec) for chart in page.get("vega_lite_chart")]
    assert specs, "no chart: the live hour did not draw"
    for chart in page.get("vega_lite_chart"):
        data = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all()
        names = data.column("series").to_pylist()
        assert names and not any(_raw(name) for name in names), names


@needs_chromium
def test_in_a_browser_no_link_or_markup_comes_of_sandbox_text(
    tmp_path: Path, database_url: str
) -> None:
    from playwright.sync_api import sync_playwright

    _seed(database_url)
    root = tmp_path / "archive"
    root.mkdir()
    env = dashboard_env(root, database_url) | {"TERRAGON_DASHBOARD_REFRESH_SECONDS": "0"}
    with (
        running_dashboard(lambda port: dashboard_argv("127.0.0.1", port, root), env) as url,
        sync_playwright() as p,
    ):
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(url)
            page.get_by_text("inspect it").wait_for(timeout=60_000)
            main = page.locator('[data-testid="stMain"]')
            links = [a.get_attribute("href") for a in main.locator("a").all()]
            assert not [h for h in links if h and not h.startswith("#")], links
            row = main.locator('[data-testid="stMarkdown"]').filter(has_text="inspect it")
            assert row.locator("a, b, .katex, [style*=color]").count() == 0, row.inner_html()
            line = row.inner_text()
            assert ":red[alarm] <b>x</b>" in line, line
            assert "[click me](http://evil.example)" in line and "\\x1b[8mhidden" in line, line
            assert not _raw(line)
        finally:
            browser.close()
