"""`terragon up --demo` as a person sees it in a terminal (a real pty), and as a log shipper
sees it through a pipe (issue 15): human lines with a periodic summary and the URLs on the last
screen, or JSON with every event, on stdout (`terragon up | head -50`, issue 24)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
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

from tests.fixtures.net import free_port
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import _processes_using

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
        term.wait_for(lambda: any("demo_round_started" in x for x in term.lines()), 240, "round 1")
        traffic_from = time.monotonic()
        seen = len(term.lines())

        # a summary wraps at words over several rows: read it as one text
        quarantined = re.compile(r"\d+\s+quarantined\s+\((\w+\s+\d+(,\s+)?)+\)")

        def joined(rows: list[str]) -> str:
            return " ".join(row.strip() for row in rows)

        def summary_after_20s() -> bool:
            fresh = term.lines()[seen:]
            return (
                time.monotonic() - traffic_from >= 20
                and any("UTC · last 10 s:" in x for x in fresh[-6:])
                # on a loaded machine the fleet's first quarantined envelope can come later
                and quarantined.search(joined(fresh)) is not None
            )

        # a summary line printed at least 20 s into the demo traffic, after one that counted a
        # quarantined envelope (not a sleep: a condition)
        term.wait_for(summary_after_20s, 150, "a summary line after 20 s of demo traffic")
        screen = term.screen()
        assert any(api in row for row in screen), "\n".join(screen)
        lines = [x for x in term.lines() if x.strip()]
        summaries = [x for x in lines if "UTC · last 10 s:" in x]
        assert any(re.search(r"\d+ applied", x) for x in summaries), summaries
        assert quarantined.search(joined(lines)), summaries
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
        stdout=subprocess.PIPE,  # the log
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    out = Terminal(proc.stdout.fileno())
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


def test_up_demo_through_a_reader_is_json_lines_and_stops_when_it_goes(data_dir: Path) -> None:
    """`uv run terragon up --demo | jq`: on stdout, every line JSON (pgserver's transcripts,
    the dashboard's Streamlit and the demo fleet's lines included), the banner only after the
    API answered, nothing on stderr; when the reader goes away, `up` stops as for a signal and
    exits 0."""
    port, dashboard_port = free_port(), free_port()
    argv = _argv(data_dir, port)
    argv[argv.index("--dashboard-port") + 1] = str(dashboard_port)  # Streamlit's output too
    errors = data_dir.with_name(data_dir.name + ".stderr")
    with errors.open("wb") as sink:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=sink,
            start_new_session=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for raw in proc.stdout:
            lines.append(raw.decode())
            if len(lines) == 50 and any('"demo_fleet_ready"' in x for x in lines):
                break
            if len(lines) >= 400:  # the fleet's first line is within the first few hundred
                break
        events = [json.loads(line) for line in lines]  # every line: one JSON object
        names = [e["event"] for e in events]
        assert "terragon_up" in names and "demo_fleet_ready" in names, names
        # the banner after the app's start-up (migrations, pool) and the API's first answer
        assert names.index("ingest_started") < names.index("terragon_up")
        up = events[names.index("terragon_up")]
        assert float(up["ready_after_seconds"]) > 0 and up["dashboard"].endswith(
            f":{dashboard_port}"
        )
        assert names.count("migrations_applied") == 1 and "migration_applied" not in names
        fleet = events[names.index("demo_fleet_ready")]
        assert fleet["process"] == "demo" and fleet["preview"] == up["demo_preview"]
        assert not [n for n in names if "Traceback" in n]
        for raw in proc.stdout:  # the first round: sandbox 0 has a run to preview
            lines.append(raw.decode())
            if '"demo_round_started"' in lines[-1] or len(lines) > 2000:
                break
        assert [json.loads(line) for line in lines[50:]]  # still every line JSON
        status, location = _get(fleet["preview"])
        assert status == 302, (status, location)
        assert re.fullmatch(
            rf"http://[0-9a-f]{{32}}\.preview\.localhost:{port}/__terragon/exchange\?token=[\w.-]+",
            location,
        ), location
        assert _get(fleet["preview"], host="rebound.example")[0] == 403  # DNS rebinding
        # the reader exits: the next write meets a closed pipe, and `up` stops everything
        proc.stdout.close()
        assert proc.wait(180) == 0
        assert not _leaks(errors.read_text()), errors.read_text()[-3000:]
    finally:
        stop_up(proc, data_dir)
        errors.unlink(missing_ok=True)


HEAD_LINES = 50
START_SECONDS = 240
"""`up --demo` until its 50th line: the embedded servers, migrations, 30 days of demo history
and the fleet's start on a loaded 2-core machine (about 20 s on a quiet one)."""
STOP_SECONDS = 60
"""From head's exit to the pipeline's end: `up`'s stop (the demo fleet's daemons take up to
30 s, then Streamlit, Valkey and PostgreSQL)."""


def _read_some(fd: int, deadline: float) -> bytes | None:
    """The next bytes of a pipe; None at its end; fail past `deadline`."""
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, "timed out waiting for the pipeline's output to end"
    return os.read(fd, 1 << 16) or None


def _leaks(stderr: str) -> list[str]:
    """What must never reach the terminal when the reader goes away: a traceback, or Python's
    "Exception ignored ... BrokenPipeError" from flushing stdout at exit."""
    return [x for x in ("Traceback", "BrokenPipeError", "Exception ignored") if x in stderr]


def test_uv_run_terragon_up_demo_piped_to_head_50(data_dir: Path) -> None:
    """Literally `uv run terragon up --demo | head -50` (on a fresh data directory and ports):
    50 JSON lines, each an event; the pipeline ends by itself (head exits after 50 lines, `up`
    then stops as on SIGTERM and exits 0: pipefail), promptly, with nothing on stderr that a
    closed pipe caused, and no process of it left: PostgreSQL, Valkey, Streamlit, the demo."""
    port, dashboard_port = free_port(), free_port()
    command = (
        f"set -o pipefail; uv run terragon up --demo --data-dir {shlex.quote(str(data_dir))} "
        f"--port {port} --dashboard-port {dashboard_port} | head -{HEAD_LINES}"
    )
    errors = data_dir.with_name(data_dir.name + ".stderr")
    with errors.open("wb") as sink:
        pipeline = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=sink,
            start_new_session=True,
        )
    assert pipeline.stdout is not None
    try:
        # our end of the pipe is head's stdout alone: its EOF is head's exit, after 50 lines
        out = Terminal(pipeline.stdout.fileno())
        deadline = time.monotonic() + START_SECONDS
        while (chunk := _read_some(out.master, deadline)) is not None:
            out.raw += chunk
        head_exited = time.monotonic()
        code = pipeline.wait(STOP_SECONDS)  # the pipeline ends once `uv run … up` exits too
        stopped_in = time.monotonic() - head_exited
        stderr = errors.read_text()
        lines = out.raw.decode().splitlines()
        assert code == 0, (code, stderr[-3000:], lines[-5:])
        assert len(lines) == HEAD_LINES, out.raw[-3000:]
        events = [json.loads(line) for line in lines]  # every line: one JSON object...
        assert all(isinstance(e, dict) and isinstance(e.get("event"), str) for e in events)
        assert not _leaks(stderr), stderr[-3000:]
        assert stopped_in < STOP_SECONDS, stopped_in
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
            pipeline.wait(10)
        errors.unlink(missing_ok=True)
    assert not leftovers(data_dir), "a process of `up` outlived the pipeline"


def _get(url: str, host: str | None = None) -> tuple[int, str]:
    """(status, Location) of a GET that does not follow redirects."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, response.getheader("location") or response.read().decode()
    finally:
        connection.close()
