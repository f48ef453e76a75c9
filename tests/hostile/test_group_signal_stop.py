"""A careless stop: `terragon up` under `uv run`, its process group signalled the way a process
manager, `timeout -s INT` or Ctrl-C on `uv run … | tee` does it (FIELD-NOTES "Signals and `uv run`").

`uv run` forwards the group's SIGINT to its child, so `terragon` gets every SIGINT twice; the test
signals the group a second time while the embedded servers are being stopped. Embedded PostgreSQL
and Valkey run in sessions of their own (a group signal never reaches them): only our cleanup stops
them, so a cleanup cut short by a signal leaves them running. Everything must be gone afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines
from tests.fixtures.settings import good_secrets
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import TERRAGON, _processes_using, _status

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (non-reaping) parent has stopped all the same
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _in_session(sid: int, *, outside_group: bool = False) -> list[int]:
    """Pids of live processes whose session is `sid` (everything `uv run` started in it), or only
    those that left its process group (`serve`'s workers, once started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, split after its ')'.
        fields = stat.rsplit(")", 1)[1].split()
        live = int(fields[3]) == sid and fields[0] != "Z"
        if live and (not outside_group or int(fields[2]) != sid):
            found.append(int(entry.name))
    return found


@pytest.fixture(name="data_dir")
def fx_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="terragon-sig-"))
    yield path
    for pid in _processes_using(path):  # only if the test failed: never leave servers behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def _demo_fleet(data_dir: Path) -> list[int]:
    found = []
    for pid in _processes_using(data_dir):
        try:
            if b"tools.demo" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _uv_run_up(data_dir: Path, port: int, dashboard_port: int) -> subprocess.Popen[bytes]:
    uv = shutil.which("uv")
    assert uv, "uv must be on PATH (the workspace is run with it)"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL"}}
    argv = [uv, "run", "--no-sync", "terragon", "--log-format", "json", "up"]
    argv += ["--data-dir", str(data_dir), "--port", str(port)]
    argv += ["--dashboard-port", str(dashboard_port), "--demo"]
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, signalled as a whole below
    )


def test_up_under_uv_run_stops_everything_on_repeated_group_sigint(data_dir: Path) -> None:
    """PostgreSQL, Valkey, the dashboard, the demo fleet and its daemons: none is left."""
    port, dashboard_port = free_port(), free_port()
    proc = _uv_run_up(data_dir, port, dashboard_port)
    pgid = proc.pid
    lines = OutputLines(proc)
    try:
        wait_until(
            lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200 or proc.poll() is not None,
            120,
            "terragon up to serve",
        )
        assert proc.poll() is None, lines.text()[-3000:]
        started = json.loads(lines.wait_for('"dashboard_started"', 10))
        pids = {
            "postgres": int((data_dir / "pg" / "postmaster.pid").read_text().split()[0]),
            "valkey": int((data_dir / "valkey" / "valkey.pid").read_text().strip()),
            "dashboard": int(started["pid"]),
        }
        # The demo fleet and its daemons (all name the data dir on their command line).
        wait_until(lambda: _demo_fleet(data_dir), 30, "the demo fleet")
        pids |= {f"process {pid}": pid for pid in _processes_using(data_dir)}
        assert all(_alive(pid) for pid in pids.values()), pids

        os.killpg(pgid, signal.SIGINT)
        # The second group signal lands while the embedded servers are being stopped (the
        # dashboard is stopped just before them), where one used to abort the cleanup.
        lines.wait_for("dashboard_stopped", 60)
        os.killpg(pgid, signal.SIGINT)

        code = proc.wait(60)
        lines.join(10)
        output = lines.text()
        assert code == 0, output[-3000:]
        assert '"terragon_stopped"' in output, output[-3000:]  # JSON: its own event
        assert "already_stopping" in output, output[-3000:]
        for name, pid in pids.items():
            wait_until(lambda pid=pid: not _alive(pid), 15, f"{name} (pid {pid}) to be gone")
        wait_until(lambda: not _in_session(pgid), 15, "every process of the session to be gone")
        assert not _processes_using(data_dir)
    finally:
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_under_uv_run_stops_cleanly_on_repeated_group_sigint(
    database_url: str, valkey_url: str, tmp_path: Path, workers: int
) -> None:
    """`serve` signalled the same way: the app's own shutdown runs, everything exits, code 0.
    One process: uvicorn took the second SIGINT as "force exit", skipped the app's shutdown and
    re-raised it ("Aborted!", exit 1). Workers: each got the group's signal and stopped on its
    own, the supervisor saw one dead before reading its queued signal and restarted it mid-stop."""
    uv = shutil.which("uv")
    assert uv
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= good_secrets() | {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_DATA_DIR": str(tmp_path),
        "TERRAGON_BACKGROUND_JOBS": "false",
    }
    argv = [uv, "run", "--no-sync", "terragon", "--log-format", "json", "serve"]
    proc = subprocess.Popen(
        [*argv, "--workers", str(workers), "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pgid = proc.pid
    lines = OutputLines(proc)
    try:
        wait_until(
            lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200 or proc.poll() is not None,
            90,
            "serve to be ready",
        )
        assert proc.poll() is None, lines.text()[-3000:]
        if workers > 1:  # every worker started (a worker leaves the group as it starts)
            wait_until(
                lambda: len(_in_session(pgid, outside_group=True)) == workers, 90, "the workers"
            )
        os.killpg(pgid, signal.SIGINT)
        lines.wait_for("ingest_stopped", 30)  # the app's shutdown ran (in one worker at least)
        os.killpg(pgid, signal.SIGINT)
        code = proc.wait(60)
        lines.join(10)
        assert code == 0, lines.text()[-3000:]
        assert "Traceback" not in lines.text(), lines.text()[-3000:]
        wait_until(lambda: not _in_session(pgid), 15, "every process of the session to be gone")
        assert _status(f"http://127.0.0.1:{port}/healthz") is None
    finally:
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            proc.wait(10)


def test_serve_workers_die_with_a_killed_supervisor(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    """Workers live outside the supervisor's process group: a SIGKILLed supervisor (no cleanup
    at all) must still take them along, or they would keep serving on the inherited socket."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= good_secrets() | {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_DATA_DIR": str(tmp_path),
        "TERRAGON_BACKGROUND_JOBS": "false",
    }
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines = OutputLines(proc)
    try:
        # Both workers serving (each logs its start; a slow machine takes a while to get there).
        wait_until(
            lambda: lines.count("ingest_started") >= 2 or proc.poll() is not None, 120, "workers"
        )
        assert proc.poll() is None, lines.text()[-3000:]
        assert len(_in_session(proc.pid, outside_group=True)) == 2, lines.text()[-3000:]
        workers = _in_session(proc.pid, outside_group=True)
        proc.kill()
        proc.wait(10)
        for pid in workers:
            wait_until(lambda pid=pid: not _alive(pid), 30, f"worker {pid} to be gone")
        assert _status(f"http://127.0.0.1:{port}/healthz") is None
    finally:
        for pid in _in_session(proc.pid):
            os.kill(pid, signal.SIGKILL)
