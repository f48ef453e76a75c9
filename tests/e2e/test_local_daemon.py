"""End to end on the `local` provider: the ingest service (real HTTP), a real daemon process from
the built bundle, the fake agent in a real git checkout.

runId propagation: runs/start mints the run → the start message reaches the daemon's socket →
every envelope v2 echoes runId/eventId/seq → POST /api/daemon-event applies them to that run.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.runs import START_PATH, start_body
from tests.fixtures.settings import settings_for
from tests.fixtures.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "packages" / "daemon_bundle" / "dist" / "terragon-daemon.pyz"
FAKE_AGENT = ROOT / "tools" / "fake_agent.py"
AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(name="repo")
def fx_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "agent@example.test")
    _git(repo, "config", "user.name", "agent")
    (repo / "README.md").write_text("hello\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture(name="live")
def fx_live(database_url: str, valkey_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    port = free_port()
    settings = settings_for(database_url, valkey_url, tmp_path / "data")
    settings = dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, PUBLIC_URL=f"http://127.0.0.1:{port}"),
    )
    server = LiveServer(settings, port)
    server.start()
    yield server
    server.stop()


def _socket_dir(live: LiveServer) -> Path:
    return live.settings.sandbox.socket_dir(live.settings.server.DATA_DIR)


def _start_daemon(
    live: LiveServer, tmp_path: Path, agent_args: list[str]
) -> subprocess.Popen[bytes]:
    sock = _socket_dir(live) / "box1.sock"
    sock.parent.mkdir(parents=True, exist_ok=True)
    agent = " ".join([sys.executable, str(FAKE_AGENT), *agent_args])
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BUNDLE),
            "--socket",
            str(sock),
            "--spool-dir",
            str(tmp_path / "spool"),
            "--agent-command",
            agent,
            "--flush-interval",
            "0.05",
            "--max-batch-messages",
            "3",
            "--retry-base-delay",
            "0.05",
            "--retry-max-delay",
            "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: sock.exists() or proc.poll() is not None, 15, "daemon socket")
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    return proc


def _register_and_start(live: LiveServer, repo: Path) -> dict:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=10) as http:
        thread = {
            "threadId": "thread-e2e",
            "userId": "user-1",
            "repoFullName": "acme/web",
            "sandboxProvider": "local",
            "codesandboxId": "box1",
            "repoDir": str(repo),
        }
        assert http.post("/api/internal/threads", json=thread).status_code == 201
        response = http.post(START_PATH, json=start_body("thread-e2e", request_id="s1"))
        assert response.status_code == 200, response.text
        return response.json()


def _run(live: LiveServer, run_id: str) -> dict:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=10) as http:
        return http.get(f"/api/internal/runs/{run_id}").json()


def _ledger(database_url: str, run_id: str) -> tuple[list[int], list[str]]:
    with psycopg.connect(database_url) as conn:
        seqs = [
            r[0]
            for r in conn.execute(
                "SELECT seq FROM daemon_event WHERE run_id = %s ORDER BY seq", (run_id,)
            )
        ]
        uuids = [
            r[0]
            for r in conn.execute(
                "SELECT message_uuid FROM run_message WHERE run_id = %s ORDER BY ordinal", (run_id,)
            )
        ]
    return seqs, uuids


def _agent_uuids(agent_args: list[str], repo: Path) -> list[str]:
    """What the agent emits, by running it again with the same seed in a scratch copy."""
    scratch = repo.parent / "scratch"
    subprocess.run(["cp", "-r", str(repo), str(scratch)], check=True)
    out = subprocess.run(
        [sys.executable, str(FAKE_AGENT), *agent_args],
        cwd=scratch,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line)["uuid"] for line in out.splitlines() if line.strip()]


@pytest.mark.skipif(not BUNDLE.exists(), reason="daemon bundle not built")
def test_run_start_to_finished_run_with_end_sha(
    live: LiveServer, repo: Path, tmp_path: Path, database_url: str
) -> None:
    agent_args = ["--messages", "12", "--commits", "2", "--seed", "7"]
    daemon = _start_daemon(live, tmp_path, agent_args)
    try:
        started = _register_and_start(live, repo)
        assert started["delivered"] is True
        assert started["runStartSha"] == _git(repo, "rev-parse", "HEAD")
        run_id = started["runId"]
        wait_until(
            lambda: _run(live, run_id)["status"] in {"finished", "failed"}, 60, "run to finish"
        )
        run = _run(live, run_id)
        assert run["status"] == "finished"
        assert run["runEndSha"] == _git(repo, "rev-parse", "HEAD")
        assert run["runEndSha"] != started["runStartSha"]  # the agent committed
        assert run["diffSource"] == "sha"
        seqs, uuids = _ledger(database_url, run_id)
        assert seqs == list(range(1, len(seqs) + 1))  # seq 1..N, no gap, in order
        assert run["lastAcceptedSeq"] == len(seqs)
        assert uuids == _agent_uuids(agent_args, repo)  # every message once, in order
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)


@pytest.mark.skipif(not BUNDLE.exists(), reason="daemon bundle not built")
def test_service_outage_mid_run_loses_and_duplicates_nothing(
    live: LiveServer, repo: Path, tmp_path: Path, database_url: str
) -> None:
    agent_args = ["--messages", "40", "--rate", "80", "--seed", "11"]
    daemon = _start_daemon(live, tmp_path, agent_args)
    try:
        started = _register_and_start(live, repo)
        run_id = started["runId"]
        wait_until(lambda: len(_ledger(database_url, run_id)[0]) >= 2, 30, "first batches")
        live.stop()  # the service goes away mid-run; the daemon keeps its sealed batches
        time.sleep(1.0)  # the outage's length, not synchronisation: the daemon retries meanwhile
        live.start()
        wait_until(
            lambda: _run(live, run_id)["status"] in {"finished", "failed"}, 60, "run to finish"
        )
        seqs, uuids = _ledger(database_url, run_id)
        assert seqs == list(range(1, len(seqs) + 1))
        assert uuids == _agent_uuids(agent_args, repo)
        assert len(uuids) == len(set(uuids))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
