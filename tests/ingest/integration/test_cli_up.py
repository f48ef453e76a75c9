"""`terragon up` as an operator runs it: embedded servers, ready, clean stop, stale detection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TERRAGON = str(Path(sys.executable).parent / "terragon")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions `path` (postgres -D …, valkey-server …/valkey.conf)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if str(path) in cmdline and "State:\tZ" not in status and "pytest" not in cmdline:
            found.append(int(entry.name))
    return found


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(name="data_dir")
def fx_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="terragon-up-"))
    yield path
    for pid in _processes_using(path):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _up(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "VALKEY_URL"}}
    env["TERRAGON_BACKGROUND_JOBS"] = "true"
    return subprocess.Popen(
        [TERRAGON, "up", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _ready(port: int) -> bool:
    return _status(f"http://127.0.0.1:{port}/readyz") == 200


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_and_stops_cleanly(data_dir: Path, sig: signal.Signals) -> None:
    port = _free_port()
    proc = _up(data_dir, port)
    try:
        _wait_until(lambda: _ready(port) or proc.poll() is not None, 90, "readyz")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert _status(f"http://127.0.0.1:{port}/healthz") == 200
        assert _processes_using(data_dir), "embedded servers should be running"
        proc.send_signal(sig)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    _wait_until(lambda: not _processes_using(data_dir), 15, "embedded servers to stop")


def test_up_detects_and_stops_a_stale_server_from_a_killed_run(data_dir: Path) -> None:
    port = _free_port()
    first = _up(data_dir, port)
    _wait_until(lambda: _ready(port) or first.poll() is not None, 90, "first readyz")
    leftovers = _processes_using(data_dir)
    first.kill()  # SIGKILL: no cleanup runs, the embedded servers are orphaned
    first.wait(10)
    assert set(leftovers) & set(_processes_using(data_dir)), "servers survive a SIGKILL of `up`"
    second = _up(data_dir, port)
    try:
        _wait_until(lambda: _ready(port) or second.poll() is not None, 90, "second readyz")
        assert second.poll() is None
        assert not set(leftovers) & set(_processes_using(data_dir)), "stale servers were stopped"
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    finally:
        if second.poll() is None:
            second.kill()
    _wait_until(lambda: not _processes_using(data_dir), 15, "embedded servers to stop")
