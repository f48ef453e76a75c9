"""`terragon up --demo` as a person sees it in a terminal (a real pty), and as a log shipper
sees it through a pipe (issue 15): human lines with a periodic summary and the URLs on the last
screen, or JSON with every event."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.integration.test_cli_up import _processes_using
from tests.support import free_port, wait_until

REPO_ROOT = Path(__file__).parents[3]
ROWS, COLUMNS = 40, 200
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def leftovers(data_dir: Path) -> list[int]:
    """Processes of a run of `up` in `data_dir`: by command line, or by working directory (the
    embedded Valkey renames its process title, and it runs in `<data-dir>/valkey`)."""
    found = set(_processes_using(data_dir))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(data_dir):
                    found.add(int(entry.name))
    found.discard(os.getpid())
    return sorted(found)


def kill_leftovers(data_dir: Path) -> None:
    """Only if a test failed: never leave servers behind (SIGKILL: a Valkey whose directory is
    gone refuses SIGTERM, it cannot save)."""
    for pid in leftovers(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(name="data_dir")
def fx_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="terragon-tty-"))
    yield path
    kill_leftovers(path)


def _argv(data_dir: Path, port: int) -> list[str]:
    uv = shutil.which("uv")
    assert uv, "uv must be on PATH"
    return [
        *(uv, "run", "--no-sync", "terragon", "up", "--demo"),
        *("--data-dir", str(data_dir), "--port", str(port), "--dashboard-port", "0"),
    ]


def _env() -> dict[str, str]:
    drop = {"DATABASE_URL", "VALKEY_URL", "TERRAGON_LOG_FORMAT", "TERRAGON_LOG_LEVEL"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def stop_up(proc: subprocess.Popen[bytes], data_dir: Path, output: Terminal | None = None) -> None:
    """SIGTERM to `up`'s group, then wait for its whole stop (the demo fleet's daemons take up to
    half a minute, then the dashboard, Valkey and PostgreSQL), reading its output meanwhile (a
    full pty or pipe would block its writes, and so its stop)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if output is not None:
                output.pump(0.5)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    wait_until(lambda: not leftovers(data_dir), 30, "every process of `up` to stop")


class Terminal:
    """The pty's output, read as it comes."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.raw = b""

    def pump(self, seconds: float = 0.2) -> None:
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            with contextlib.suppress(OSError):  # the other side closed
                self.raw += os.read(self.master, 1 << 16)

    def lines(self) -> list[str]:
        text = ANSI.sub("", self.raw.decode(errors="replace"))
        return [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]

    def screen(self) -> list[str]:
        """The last screenful: each line takes as many rows as it wraps to."""
        rows: list[str] = []
        for line in self.lines():
            rows += [line[i : i + COLUMNS] for i in range(0, max(len(line), 1), COLUMNS)]
        while rows and not rows[-1].strip():
            rows.pop()
        return rows[-ROWS:]

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            self.pump()
        tail = "\n".join(self.lines()[-40:])
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; output:\n{tail}")


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux pty")
def test_up_demo_in_a_terminal_summarises_and_keeps_the_urls_on_screen(data_dir: Path) -> None:
    import fcntl
    import termios

    port = free_port()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        _argv(data_dir, port),
        cwd=REPO_ROOT,
        env=_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    term = Terminal(master)
    api = f"API http://127.0.0.1:{port}"
    try:
        term.wait_for(lambda: any("round 1 started" in x for x in term.lines()), 240, "round 1")
        traffic_from = time.monotonic()
        seen = len(term.lines())

        def summary_after_20s() -> bool:
            fresh = term.lines()[seen:]
            return time.monotonic() - traffic_from >= 20 and any(
                "UTC · last 10 s:" in x for x in fresh[-6:]
            )

        # a summary line printed at least 20 s into the demo traffic (not a sleep: a condition)
        term.wait_for(summary_after_20s, 90, "a summary line after 20 s of demo traffic")
        screen = term.screen()
        assert any(api in row for row in screen), "\n".join(screen)
        lines = [x for x in term.lines() if x.strip()]
        summaries = [x for x in lines if "UTC · last 10 s:" in x]
        assert any(re.search(r"\d+ applied", x) for x in summaries), summaries
        assert any(re.search(r"\d+ quarantined \((\w+ \d+(, )?)+\)", x) for x in summaries)
        # human lines: no JSON, and the per-envelope details are folded into the summaries
        assert not [x for x in lines if x.lstrip().startswith("{")]
        for detail in ("preview_event", "envelope_quarantined", "envelope_decided"):
            assert not [x for x in lines if detail in x], detail
        assert any("terragon is up" in x for x in lines)
    finally:
        stop_up(proc, data_dir, term)
        os.close(master)


def test_up_demo_through_a_pipe_logs_json_with_every_event(data_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        _argv(data_dir, port),
        cwd=REPO_ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    out = Terminal(proc.stderr.fileno())
    events: dict[str, int] = {}

    def every_kind_seen() -> bool:
        events.clear()
        for line in out.lines():
            if line.startswith("{"):
                name = json.loads(line)["event"]
                events[name] = events.get(name, 0) + 1
        return all(
            name in events
            for name in ("envelope_quarantined", "preview_event", "run_started", "ingest_started")
        )

    try:
        out.wait_for(every_kind_seen, 240, "quarantine, preview and run events as JSON")
        lines = [x for x in out.lines() if x.strip()]
        assert not [x for x in lines if "UTC · last" in x], "no summary lines in JSON mode"
        # every quarantined envelope has its own JSON line with its details
        quarantined = [
            json.loads(x) for x in lines if x.startswith("{") and "envelope_quarantined" in x
        ]
        assert all(q["reason"] and q["quarantine_id"] and q["hint"] for q in quarantined)
    finally:
        stop_up(proc, data_dir, out)
