"""The storm walk of issue 24, in Chromium: an on-call engineer paged for a `missing_run_id`
storm sets the UTC days to the storm day and Reason to `missing_run_id`, clicks the first
offender (the storm's repo), finds that repo's rows of that day, and runs the printed commands as
printed: the archived row, the row in PostgreSQL, and its whole offloaded payload.

Over a seeded installation (`tests/dashboard/storm.py`: the test PostgreSQL, its rollup into the
archive, the payload in the object store) rather than a whole `terragon up --demo`: the same
page and commands, in a fraction of the time."""

from __future__ import annotations

import csv
import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terragon_core import QuarantineReason
from terragon_ingest.dashboard import dashboard_argv, dashboard_env
from tests.dashboard.storm import (
    PAYLOAD_MARKER,
    STORM_REPO,
    Storm,
    clean_env,
    seed_storm,
    storm_database,
)
from tests.fixtures.browser import ARTIFACTS, MARKS, launch
from tests.fixtures.dashboard import FOUR_CHARTS_JS, running_dashboard

REPO_ROOT = Path(__file__).parents[3]
SETTLED_JS = "() => document.querySelectorAll('[data-stale=\"true\"]').length === 0"

pytestmark = MARKS


@pytest.fixture(name="storm_page", scope="module")
def fx_storm_page(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Storm]]:
    with storm_database(pg_admin_url, template_database) as url:
        storm = seed_storm(url, tmp_path_factory.mktemp("storm-walk"))
        # as `terragon up` starts it: archive, database and data directory
        env = dashboard_env(storm.archive, url, storm.data_dir)
        env["TERRAGON_DASHBOARD_REFRESH_SECONDS"] = "0"
        argv = functools.partial(dashboard_argv, "127.0.0.1", archive_dir=storm.archive)
        with running_dashboard(argv, env) as page_url:
            yield page_url, storm


def _settle(page: Any) -> None:
    page.wait_for_function(SETTLED_JS, timeout=30_000)


def _run_as_printed(line: str) -> str:
    done = subprocess.run(
        line, shell=True, cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout


def test_the_storm_walk(storm_page: tuple[str, Storm]) -> None:
    from playwright.sync_api import sync_playwright

    url, storm = storm_page
    day = storm.day
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 3200}, accept_downloads=True)
            # the grid saves through a file picker where the browser has one: a plain download here
            page.add_init_script("delete window.showSaveFilePicker")
            page.goto(url)
            page.wait_for_function(FOUR_CHARTS_JS, timeout=90_000)
            # the storm day
            # the storm day, typed into both ends of the range (year, month, day segments)
            for end in ("start", "end"):
                page.get_by_role("spinbutton", name=f"year, UTC days {end} date").click()
                page.keyboard.type(f"{day:%Y%m%d}")
            page.keyboard.press("Enter")
            page.keyboard.press("Escape")
            page.get_by_role("heading", name="Quarantine trends").click()  # closes the calendar
            page.get_by_text(f"{day} UTC, per minute").wait_for(timeout=30_000)
            _settle(page)
            # Reason: missing_run_id
            page.locator('[data-testid="stMultiSelect"]').first.click()
            page.get_by_role("option", name=QuarantineReason.MISSING_RUN_ID.value).click()
            page.keyboard.press("Escape")
            page.get_by_text("Recent quarantine rows").wait_for(timeout=30_000)
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "storm-walk-filtered.png"), full_page=True)
            # the first offender is the storm's repo: click it
            grid = page.locator('[data-testid="stDataFrame"]').first
            box = grid.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # the first row's selection cell
            heading = page.get_by_text(re.compile(r"Recent quarantine rows of repo \S+"))
            heading.wait_for(timeout=30_000)
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "storm-walk-rows.png"), full_page=True)
            assert heading.inner_text().endswith(STORM_REPO)
            # the rows, as the grid's own "Download as CSV" gives them
            rows_grid = page.locator('[data-testid="stDataFrame"]').last
            rows_grid.hover()
            with page.expect_download() as download:
                page.get_by_role("button", name="Download as CSV").last.click()
            with open(download.value.path(), newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
            assert len(rows) == len(storm.storm_ids)  # every storm row of that day, no other
            assert {r["repo_full_name"] for r in rows} == {STORM_REPO}
            assert {r["reason"] for r in rows} == {QuarantineReason.MISSING_RUN_ID.value}
            assert {r["created_at"][:10] for r in rows} == {day.isoformat()}
            assert [r["id"] for r in rows] == storm.storm_ids
            # the commands of the newest row, the offloaded one, run as printed
            newest = storm.storm_ids[0]
            text = page.get_by_text(re.compile(r"^Row .*: inspect it")).first.inner_text()
            assert newest in text and STORM_REPO in text
            code = page.locator("code").filter(has_text="uv run terragon").first.inner_text()
            lines = code.strip().splitlines()
            assert [x.split(" ")[3:5] for x in lines] == [
                ["archive", "sql"],
                ["quarantine", "show"],
                ["quarantine", "show"],
                ["quarantine", "replay"],
            ], lines
            (archived,) = json.loads(_run_as_printed(lines[0]))
            assert archived["id"] == newest and archived["repo_full_name"] == STORM_REPO
            shown = json.loads(_run_as_printed(lines[1]))
            assert shown["id"] == newest and shown["reason"] == "missing_run_id", shown
            assert lines[2].endswith(f"--payload {newest}")
            payload = json.loads(_run_as_printed(lines[2]))  # the whole offloaded envelope
            assert payload["marker"] == PAYLOAD_MARKER and len(payload["pad"]) == 4000
            replayed = json.loads(_run_as_printed(lines[3]).splitlines()[0])
            assert replayed["quarantineId"] == newest, replayed
        finally:
            browser.close()
