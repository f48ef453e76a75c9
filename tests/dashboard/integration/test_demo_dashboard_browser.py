"""The demo dashboard in a real browser (issue 15): `terragon up --demo` (30 days of history plus
the live demo fleet), opened by Debian's chromium in a time zone that is not UTC. Every chart has
data at once, the time axes read 24-hour UTC, legend entries are distinct and whole, the storm
crosses the threshold line, there is no Deploy button, and an offender row leads to its rows and
the exact `terragon quarantine` commands. With sign-in configured, a browser that has not signed
in sees the sign-in form and never receives a payload prefix; one that signed in stays signed in
across reloads and tabs until it signs out."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from terragon_core import DASHBOARD_SESSION_COOKIE, DASHBOARD_SESSION_SECONDS, QuarantineReason
from terragon_ingest.dashboard import dashboard_argv, dashboard_env
from tests.dashboard.seed import Row, connect, insert_quarantine
from tests.fixtures.browser import ARTIFACTS, MARKS, launch
from tests.fixtures.dashboard import FOUR_CHARTS_JS, healthy, running_dashboard
from tests.fixtures.net import free_port
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_up_terminal import Terminal, kill_leftovers, stop_up
from tools.bench.synthetic_archive import generate_archive

REPO_ROOT = Path(__file__).parents[3]
TIMEZONE = "America/Los_Angeles"  # what a 12-hour local axis would show differs from UTC

pytestmark = MARKS


# Per chart: its title, points drawn, x-axis labels, legend labels, and the screen y of the
# threshold rule and of the highest point (SVG y grows downwards).
_CHARTS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"] svg')).map(svg => {
  const texts = sel => Array.from(svg.querySelectorAll(sel)).map(t => t.textContent);
  const tops = sel => Array.from(svg.querySelectorAll(sel)).map(e => {
    const r = e.getBoundingClientRect(); return r.top + r.height / 2; });
  return {
    points: svg.querySelectorAll('g.mark-symbol path').length,
    xLabels: texts('g[aria-label^="X-axis"] .role-axis-label text'),
    legend: texts('g.role-legend-label text'),
    ruleY: tops('g.mark-rule line, g.mark-rule path')[0],
    highestY: Math.min(...tops('g.mark-symbol path')),
  };
})
"""


_SETTLED_JS = "() => document.querySelectorAll('[data-stale=\"true\"]').length === 0"


@pytest.fixture(name="demo_up", scope="module")
def fx_demo_up() -> Iterator[tuple[str, Path]]:
    """`terragon up --demo` with its dashboard; yields (dashboard URL, data dir) once the live
    fleet has quarantined envelopes."""
    data_dir = Path(tempfile.mkdtemp(prefix="terragon-demo-browser-"))
    port, dashboard_port = free_port(), free_port()
    uv = shutil.which("uv")
    assert uv, "uv must be on PATH"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL"}}
    env.pop("TERRAGON_DASHBOARD_AUTH", None)
    proc = subprocess.Popen(
        [
            *(uv, "run", "--no-sync", "terragon", "--log-format", "json", "up", "--demo"),
            *("--data-dir", str(data_dir), "--port", str(port)),
            *("--dashboard-port", str(dashboard_port)),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # its log
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    out = Terminal(proc.stdout.fileno())
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        out.wait_for(
            lambda: sum('"envelope_quarantined"' in x for x in out.lines()) >= 3,
            300,
            "the demo fleet's first quarantined envelopes",
        )
        wait_until(lambda: healthy(url), 60, "the dashboard")
        yield url, data_dir
    finally:
        try:
            stop_up(proc, data_dir, out)
        finally:
            kill_leftovers(data_dir)


def test_demo_dashboard_has_every_chart_in_24_hour_utc(demo_up: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = demo_up
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(
                viewport={"width": 1400, "height": 3000}, timezone_id=TIMEZONE
            )
            page = context.new_page()
            page.goto(url)
            try:
                page.wait_for_function(FOUR_CHARTS_JS, timeout=90_000)
                page.get_by_text("Top offenders by repo").wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "demo-dashboard.png"), full_page=True)
            # the browser really is elsewhere: a local axis would not read UTC
            offset = page.evaluate("() => new Date().getTimezoneOffset()")
            assert offset != 0
            charts = page.evaluate(_CHARTS_JS)
            assert len(charts) == 4, charts  # three trends (30 days of history) + the live hour
            for chart in charts:
                assert chart["points"] >= 5, chart  # populated
                legend = chart["legend"]
                assert legend and len(set(legend)) == len(legend), chart  # distinct entries
                assert not any(label.endswith("…") for label in legend), chart  # not cut
                assert not any(re.search(r"\b(AM|PM)\b", x) for x in chart["xLabels"]), chart
            # in page order: the three trends, then the live hour
            names = ["strict_mismatch", "legacy_mode", "missing_end_sha", "last"]
            trends = dict(zip(names, charts, strict=True))
            # the 30-day trends: one label per day, "Mon 02 Nov"
            for name in ("strict_mismatch", "legacy_mode", "missing_end_sha"):
                labels = trends[name]["xLabels"]
                assert labels and all(re.fullmatch(r"\w{3} \d{2} \w{3}", x) for x in labels), labels
            # the storm: a point above the dashed threshold rule
            storm = trends["strict_mismatch"]
            assert storm["highestY"] < storm["ruleY"], storm
            # the live hour: 24-hour UTC minutes, in the last hour by the UTC clock
            live = trends["last"]["xLabels"]
            assert live and all(re.fullmatch(r"\d{2}:\d{2}", x) for x in live), live
            now = datetime.now(UTC)
            utc_hours = {f"{(now - timedelta(hours=h)):%H}" for h in (0, 1)}
            assert {x[:2] for x in live} <= utc_hours, (live, utc_hours)
            # viewer toolbar: no Deploy button on an operations page
            assert page.get_by_role("button", name="Deploy").count() == 0
            body = page.locator("body").inner_text()
            assert "No preview." not in body
            # the exact commands for the newest row, before anything is clicked
            code = page.locator("code").filter(has_text="terragon quarantine show").first
            assert re.search(r"terragon quarantine replay .* [0-9a-f-]{36}", code.inner_text())

            # from an offender row to its rows: click the first row of the offenders table
            grid = page.locator('[data-testid="stDataFrame"]').first
            box = grid.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # the row's selection cell
            heading = page.get_by_text(re.compile(r"Recent quarantine rows of repo \S+/\S+"))
            heading.wait_for(timeout=30_000)
            picked = heading.inner_text().rsplit(" ", 1)[-1]
            page.wait_for_function(_SETTLED_JS, timeout=30_000)  # the rerun has finished
            # the commands now name a row of that offender
            row = page.get_by_text(re.compile(r"^Row .*: inspect it")).first.inner_text()
            assert f", {picked}, " in row, (picked, row)
            page.screenshot(path=str(ARTIFACTS / "demo-dashboard-drill-down.png"), full_page=True)
        finally:
            browser.close()


PASSWORD = "demo sign-in password 15"
MARKER = "prefix-only-for-signed-in-users-0x15"


@pytest.fixture(name="signed_dashboard")
def fx_signed_dashboard(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A dashboard with sign-in configured, over a demo archive and a database that holds a live
    row whose payload prefix carries `MARKER`."""
    root = tmp_path / "archive"
    generate_archive(root, last_day=datetime.now(UTC).date(), days=3, repos=3, rows_per_minute=1)
    with connect(database_url) as conn:
        insert_quarantine(
            conn,
            [Row(at=datetime.now(UTC) - timedelta(minutes=3), reason=QuarantineReason.MISMATCH)],
        )
        conn.execute(
            "UPDATE daemon_event_quarantine SET payload_prefix_2k = %s",
            (json.dumps({"m": MARKER}),),
        )
    env = dashboard_env(root, database_url) | {
        "TERRAGON_DASHBOARD_REFRESH_SECONDS": "0",
        "TERRAGON_DASHBOARD_AUTH": "password",
        "TERRAGON_DASHBOARD_PASSWORD": PASSWORD,
    }
    with running_dashboard(lambda port: dashboard_argv("127.0.0.1", port, root), env) as url:
        yield url


_THREE_TRENDS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"] svg'))
  .filter(svg => svg.querySelector('g.mark-symbol path')).length >= 3
"""


def _sign_in(page: Any, password: str) -> None:
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_with_sign_in_an_unauthenticated_browser_sees_no_payload_prefix(
    signed_dashboard: str,
) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    received: list[bytes] = []
    sockets: list[str] = []

    def record(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on(
            "framereceived",
            lambda frame: received.append(frame if isinstance(frame, bytes) else frame.encode()),
        )

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.on("websocket", record)
            page.goto(signed_dashboard)  # sent to the sign-in form: no page, no websocket
            page.get_by_role("heading", name="Sign in").wait_for(timeout=60_000)
            assert page.url.endswith("/_terragon/sign-in")
            _sign_in(page, "not the password")
            page.get_by_text("Wrong password.").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-sign-in.png"))
            assert page.locator('[data-testid="stVegaLiteChart"]').count() == 0
            assert page.locator('[data-testid="stDataFrame"]').count() == 0
            # nothing of the dashboard reached this browser: no websocket was even opened
            assert not sockets and not any(MARKER.encode() in frame for frame in received)

            # the same browser signed in receives it: the check above could fail
            _sign_in(page, PASSWORD)
            page.get_by_text("Recent quarantine rows").wait_for(timeout=60_000)
            page.locator('[data-testid="stDataFrame"]').last.wait_for(timeout=30_000)
            assert any(MARKER.encode() in frame for frame in received)
        finally:
            browser.close()


def test_a_signed_in_browser_stays_signed_in_across_reloads_and_tabs_until_it_signs_out(
    signed_dashboard: str,
) -> None:
    """Issue 24: every reload signed the user out. CONTRACT §7: a signed, expiring (at most 12
    hours), HttpOnly cookie keeps the browser signed in; signing out ends it for every tab."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1600})
            page = context.new_page()
            page.goto(signed_dashboard)
            page.get_by_role("heading", name="Sign in").wait_for(timeout=60_000)
            _sign_in(page, PASSWORD)
            page.get_by_text("Recent quarantine rows").wait_for(timeout=60_000)

            (cookie,) = [c for c in context.cookies() if c["name"] == DASHBOARD_SESSION_COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            now = datetime.now(UTC).timestamp()
            assert now < cookie["expires"] <= now + DASHBOARD_SESSION_SECONDS + 5
            # page scripts cannot read it
            assert DASHBOARD_SESSION_COOKIE not in page.evaluate("() => document.cookie")

            page.reload()
            page.get_by_text("Recent quarantine rows").wait_for(timeout=60_000)
            page.wait_for_function(_THREE_TRENDS_JS, timeout=60_000)
            assert page.get_by_role("heading", name="Sign in").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-after-reload.png"), full_page=True)

            tab = context.new_page()  # another tab of the same browser
            tab.goto(signed_dashboard)
            tab.get_by_text("Recent quarantine rows").wait_for(timeout=60_000)

            page.get_by_role("button", name="Sign out").click()
            page.get_by_text("You have signed out.").wait_for(timeout=30_000)
            assert page.locator('[data-testid="stVegaLiteChart"]').count() == 0
            page.reload()  # the cookie is dead: back to the form
            page.get_by_role("heading", name="Sign in").wait_for(timeout=60_000)
            tab.reload()  # and in the other tab too
            tab.get_by_role("heading", name="Sign in").wait_for(timeout=60_000)
            assert tab.url.endswith("/_terragon/sign-in")
        finally:
            browser.close()
