"""The dashboard's real page in Chromium (Playwright, Debian's /usr/bin/chromium): `streamlit run`
as `terragon dashboard` starts it (`terragon_ingest.dashboard`'s argv and environment), timed
from the browser's side until every chart has drawn its marks and Streamlit reports the run finished.

What a timing covers: the script run (archive reads, queries, chart specs), the websocket
messages, the frontend's React and Vega rendering. `drawn` = the script is not running, no
element is stale, at least `charts` Vega charts exist and each has drawn a line or points, and a
data frame is on the page.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bench.stack import free_port

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 180_000
"""A broken page fails the bench after this long instead of hanging it."""

DRAWN_JS = """
(charts) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  if (!document.querySelector('[data-testid="stDataFrame"]')) return false;
  const found = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
  return found.length >= charts &&
    found.every(c => c.querySelector('svg g.mark-symbol path, svg g.mark-line path'));
}
"""

WATCH_RUNS_JS = """
() => {
  window.__terragonRunsEnded = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(records => {
    window.__terragonRunsEnded += records.filter(r => r.oldValue === 'running').length;
  }).observe(app, {attributes: true, attributeOldValue: true,
                   attributeFilter: ['data-test-script-state']});
}
"""
"""Counts finished script runs from now on: a rerun that starts and ends between two polls is
still seen (the observer gets every attribute change with its old value)."""

RUN_ENDED_JS = "() => window.__terragonRunsEnded >= 1"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    log: Path

    def wait_warm(self, timeout: float = 300.0) -> float:
        """Wait for the server's warm-up (`cache.warm_up` logs `dashboard_warm`); its seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if '"dashboard_warm"' in line:
                    return float(json.loads(line).get("seconds", 0.0))
                if '"dashboard_warm_up_failed"' in line:
                    raise RuntimeError(f"the dashboard's warm-up failed: {line}")
            time.sleep(0.2)
        raise RuntimeError(f"no dashboard_warm in {timeout:.0f} s; see {self.log}")


MINIMAL_PAGE = Path(__file__).with_name("minimal_page.py")


def minimal_argv(port: int) -> list[str]:
    """`streamlit run` of `MINIMAL_PAGE` with the dashboard's server options."""
    from terragon_ingest.dashboard import dashboard_argv

    argv = dashboard_argv("127.0.0.1", port, "unused")
    argv[argv.index("run") + 1] = str(MINIMAL_PAGE)
    return argv[: argv.index("--")]


@contextlib.contextmanager
def served(
    archive: Path | str,
    env: dict[str, str],
    workdir: Path,
    argv: Callable[[int], list[str]] | None = None,
) -> Iterator[Served]:
    """`streamlit run` over `archive` on a free 127.0.0.1 port (the argv `terragon dashboard`
    uses, or `argv(port)`); yields it once healthy."""
    from terragon_ingest.dashboard import dashboard_argv

    port = free_port()
    log = (workdir / f"dashboard-{port}.log").open("wb")
    process = subprocess.Popen(
        argv(port) if argv else dashboard_argv("127.0.0.1", port, archive),
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard exited ({process.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard was not healthy in 90 s; see {log.name}")
            time.sleep(0.2)
        yield Served(url, Path(log.name))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _timed(action: Callable[[], object], page: Any, charts: int) -> float:
    started = time.perf_counter()
    action()
    page.wait_for_function(DRAWN_JS, arg=charts, timeout=TIMEOUT_MS, polling=20)
    return time.perf_counter() - started


def _rerun_timed(action: Callable[[], object], page: Any, charts: int) -> float:
    """A widget change: timed until a script run has ended and the page is drawn again."""
    page.evaluate(WATCH_RUNS_JS)
    started = time.perf_counter()
    action()
    page.wait_for_function(RUN_ENDED_JS, timeout=TIMEOUT_MS, polling=20)
    page.wait_for_function(DRAWN_JS, arg=charts, timeout=TIMEOUT_MS, polling=20)
    return time.perf_counter() - started


@dataclass(slots=True)
class PageTimings:
    first: float = 0.0
    """A new browser's first navigation to a server that was just started (nothing cached)."""
    second_visitor: float = 0.0
    """Another new browser's first navigation, right after."""
    reloads: list[float] = field(default_factory=list)
    filters: list[float] = field(default_factory=list)

    @property
    def reload(self) -> float:
        return statistics.median(self.reloads)

    @property
    def filter(self) -> float:
        return statistics.median(self.filters)


def _pick_reason(page: Any, reason: str) -> None:
    """Replace the Reason filter's selection with `reason` (the multiselect's own keys)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(
        has_text="Reason"
    )
    box.locator("input").click()
    page.keyboard.type(reason)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def _clear_reasons(page: Any) -> None:
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(
        has_text="Reason"
    )
    box.locator("input").click()
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")


def measure_page(
    browser: Any, url: str, *, reloads: int = 3, reasons: tuple[str, ...] = ()
) -> PageTimings:
    """First render, reloads, then one filter change per reason in `reasons` (each picked alone,
    the previous one removed first: a query the page has not run before)."""
    out = PageTimings()
    context = browser.new_context(viewport={"width": 1400, "height": 2600})
    try:
        page = context.new_page()
        out.first = _timed(lambda: page.goto(url), page, 3)
        for _ in range(reloads):
            out.reloads.append(_timed(page.reload, page, 3))
        for i, reason in enumerate(reasons):
            if i:
                _rerun_timed(lambda: _clear_reasons(page), page, 3)
            out.filters.append(_rerun_timed(lambda r=reason: _pick_reason(page, r), page, 1))
    finally:
        context.close()
    other = browser.new_context(viewport={"width": 1400, "height": 2600})
    try:
        page = other.new_page()
        out.second_visitor = _timed(lambda: page.goto(url), page, 3)
    finally:
        other.close()
    return out


def measure_sign_in(browser: Any, url: str, password: str) -> float:
    """A new browser: the sign-in form, then from the click on "Sign in" to the drawn page."""
    context = browser.new_context(viewport={"width": 1400, "height": 2600})
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_label("Password", exact=True).fill(password)
        return _timed(lambda: page.get_by_role("button", name="Sign in").click(), page, 3)
    finally:
        context.close()
