"""A dashboard under test: `streamlit run` (`terragon_ingest.dashboard`'s argv and environment)
on a free 127.0.0.1 port, healthy before the test goes on, stopped after it. Shared by the
browser tests."""

from __future__ import annotations

import contextlib
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support import free_port, wait_until

FOUR_CHARTS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"] svg'))
  .filter(svg => svg.querySelector('g.mark-symbol path')).length >= 4
"""
"""True once four charts have drawn points (a page that finished its first run)."""


def healthy(url: str) -> bool:
    """Streamlit's own health endpoint answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_dashboard(
    argv: Callable[[int], list[str]], env: dict[str, str], cwd: Path | None = None
) -> Iterator[str]:
    """Start `argv(port)` on a free port; yield its URL once healthy; stop it (terminate, then
    kill) however the test ends. A dashboard that exits before it is healthy fails with its
    output (`terragon dashboard` logs on stdout; Streamlit alone on stderr: both are read)."""
    port = free_port()
    process = subprocess.Popen(
        argv(port), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url) or process.poll() is not None, 60, "streamlit")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
