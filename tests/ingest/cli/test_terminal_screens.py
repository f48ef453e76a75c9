"""What a person sees in a real terminal (tmux, 80 columns): `terragon up --demo`'s last screen
after 30 s of traffic holds the banner's URLs and no line wider than the terminal; a bulk replay's
progress bar is drawn once, with the result lines above it (issue 24 item 5).

tmux renders the screen as a terminal would; `capture-pane -J` joins the rows a line wrapped
onto, so a line wider than the terminal shows as one longer line."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon_events import envelope, post, set_strict
from tests.fixtures.net import free_port
from tests.fixtures.runs import start_run
from tests.ingest.cli.test_up_terminal import REPO_ROOT, kill_leftovers

TMUX = shutil.which("tmux")
COLUMNS, ROWS = 80, 24
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (.ci/setup.d/tmux.sh installs it)"
)


class Screen:
    """A tmux server of its own (its socket in a temporary directory) with one window."""

    def __init__(self, directory: Path) -> None:
        assert TMUX is not None
        self.tmux = [TMUX, "-S", str(directory / "tmux.sock")]

    def run(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"cd {shlex.quote(str(REPO_ROOT))} && env {exports} {command}; echo EXIT=$?"
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-x", str(COLUMNS), "-y", str(ROWS), line],
            check=True,
        )
        subprocess.run([*self.tmux, "set-option", "remain-on-exit", "on"], check=True)

    def visible(self) -> list[str]:
        return self._capture("-J")

    def history(self) -> list[str]:
        """Every line since the start, wrapped rows joined again."""
        return self._capture("-J", "-S", "-")

    def _capture(self, *options: str) -> list[str]:
        done = subprocess.run(
            [*self.tmux, "capture-pane", "-p", *options],
            capture_output=True,
            check=True,
            text=True,
        )
        return done.stdout.rstrip("\n").split("\n")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)  # polling a screen; the condition is what is waited for
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(self.history()))

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)


@pytest.fixture(name="screen")
def fx_screen(tmp_path: Path) -> Iterator[Screen]:
    screen = Screen(tmp_path)
    yield screen
    screen.kill()


def _env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "UV_CACHE_DIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    return {**env, "TERM": "xterm-256color", **extra}


def _too_wide(lines: list[str]) -> list[str]:
    # rstrip: tmux pads a joined line with the spaces the renderer left at the row's end
    return [line for line in lines if len(line.rstrip()) > COLUMNS]


def test_up_demo_last_screen_holds_the_urls_and_fits_80_columns(screen: Screen) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="terragon-tmux-"))
    port, dashboard_port = free_port(), free_port()
    uv = shutil.which("uv")
    assert uv
    command = shlex.join(
        [
            *(uv, "run", "--no-sync", "terragon", "up", "--demo", "--data-dir", str(data_dir)),
            *("--port", str(port), "--dashboard-port", str(dashboard_port)),
        ]
    )
    screen.run(command, _env())
    try:
        screen.wait_for(
            lambda: any("terragon is up" in line for line in screen.history()), 300, "the banner"
        )
        began = time.monotonic()
        api = f"http://127.0.0.1:{port}"
        dashboard = f"http://127.0.0.1:{dashboard_port}"

        def steady() -> bool:
            shown = "\n".join(screen.visible())
            return time.monotonic() - began >= 30 and api in shown and dashboard in shown

        screen.wait_for(steady, 120, "30 s after the banner, the URLs on the last screen")
        last = screen.visible()
        shown = "\n".join(last)
        banner = screen.history()
        [preview_line] = [line for line in banner if line.startswith("  Preview ")]
        preview = preview_line.split()[1]
        assert preview.startswith("http://127.0.0.1:") and preview in shown, shown
        assert not _too_wide(last), _too_wide(last)
        assert not _too_wide(banner), _too_wide(banner)  # the whole run, banner included
        assert not [line for line in banner if line.lstrip().startswith("{")]  # no JSON here
        assert sum("migrations_applied" in line for line in banner) == 1
        assert not [line for line in banner if "migration_applied " in line]
    finally:
        with contextlib.suppress(Exception):
            pid = json.loads((data_dir / "up.json").read_text())["pid"]
            os.kill(pid, 15)
            deadline = time.monotonic() + 120
            while (data_dir / "up.json").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
        kill_leftovers(data_dir)


async def test_bulk_replay_draws_its_bar_once_with_the_rows_above_it(
    client, database_url: str, valkey_url: str, tmp_path: Path, screen: Screen
) -> None:
    """The rows' JSON lines (stdout, the terminal) and the log lines (stderr, at debug: one per
    row) go above the bar, which stays one bar: it used to be drawn again after every line."""
    await set_strict(client, True)
    _, token = await start_run(client, request_id="screens")
    for seq in range(1, 31):  # no runId under the strict flag: missing_run_id
        response = await post(client, envelope(None, seq), token)
        assert response.status_code == 202, response.text
    uv = shutil.which("uv")
    assert uv
    command = shlex.join(
        [
            *(uv, "run", "--no-sync", "terragon", "--log-level", "debug", "quarantine"),
            *("replay", "--since", "2000-01-01", "--database-url", database_url),
            *("--data-dir", str(tmp_path)),
        ]
    )
    screen.run(command, _env(VALKEY_URL=valkey_url))
    screen.wait_for(lambda: any("EXIT=" in line for line in screen.history()), 120, "the end")
    lines = [line for line in screen.history() if line.strip()]
    assert [line for line in lines if line.startswith("EXIT=")] == ["EXIT=0"], lines
    bars = [line for line in lines if "replaying quarantined envelopes" in line]
    assert len(bars) == 1, "\n".join(lines)
    assert "30/30" in bars[0]
    rows = [json.loads(line) for line in lines if line.startswith('{"quarantineId"')]
    assert len(rows) == 30
    assert sum("quarantine_replayed" in line for line in lines) == 30  # debug: one per row
    totals = json.loads(next(line for line in lines if line.startswith('{"total"')))
    assert totals["total"] == 30
    assert lines.index(bars[0]) > max(
        i for i, line in enumerate(lines) if line.startswith('{"quarantineId"')
    )
