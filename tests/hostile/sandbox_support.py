"""Helpers for the hostile-sandbox tests (no tests here): a real service on a socket, a `local`
sandbox whose checkout the test controls, a run started over HTTP, a legacy terminal envelope.

The run is started through `POST /api/internal/runs/start` for real (it reads `runStartSha` from
the checkout, which is part of what is attacked); the start message is taken by `DaemonSocket`, a
real Unix socket that answers like a daemon and does nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import INTERNAL_TOKEN
from tests.live_server import LiveServer, free_port

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
QUICK = 5.0
"""Seconds within which a hostile envelope must be answered."""
RESULT = [{"type": "assistant", "text": "done"}, {"type": "result", "is_error": False}]
BOX = "box-h"
THREAD = "thread-h"
CHAT = "chat-h"

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@x",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@x",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


def git(repo: Path, *args: str) -> str:
    """Git as the sandbox's agent runs it (its own config applies; the test is the attacker).
    `core.fsmonitor` etc. are switched off for the test's own calls, so only the service can
    trip the markers."""
    safe = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"]
    return subprocess.run(
        ["git", *safe, "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env=_GIT_ENV,
        text=True,
    ).stdout.strip()


def write(repo: Path, path: str, text: str = "x\n") -> Path:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def make_checkout(root: Path) -> Path:
    repo = root / "checkout"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, "README.md")
    write(repo, "src/server.py")
    write(repo, "notes.txt", "notes\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def commit_all(repo: Path, message: str = "agent") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@contextmanager
def live_service(settings: Any) -> Iterator[LiveServer]:
    """The app under uvicorn on 127.0.0.1, its `local` daemons' sockets in a short directory
    (a Unix socket path is limited to 108 bytes; pytest's tmp paths can be longer)."""
    socket_dir = Path(tempfile.mkdtemp(prefix="tg-sock-"))
    settings = dataclasses.replace(
        settings, sandbox=dataclasses.replace(settings.sandbox, LOCAL_SOCKET_DIR=socket_dir)
    )
    server = LiveServer(settings, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


class DaemonSocket:
    """A Unix socket at `{socket_dir}/{codesandboxId}.sock` that accepts start messages as a
    daemon does (one JSON line in, `{"ok": true}` out) and keeps them in `messages`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[dict[str, Any]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, conn.makefile("rwb") as stream:
                line = stream.readline()
                self.messages.append(json.loads(line))
                stream.write(b'{"ok": true}\n')
                stream.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@contextmanager
def daemon_socket(live: LiveServer) -> Iterator[DaemonSocket]:
    socket_dir = live.settings.sandbox.socket_dir(live.settings.server.DATA_DIR)
    socket_dir.mkdir(parents=True, exist_ok=True)
    daemon = DaemonSocket(socket_dir / f"{BOX}.sock")
    try:
        yield daemon
    finally:
        daemon.close()


def http(live: LiveServer, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers=AUTH, timeout=timeout)


def start_local_run(live: LiveServer, repo: Path, *, strict: bool = False) -> dict[str, Any]:
    """Register a `local` thread on `repo` and start a run over HTTP; return the start answer."""
    with http(live) as client, daemon_socket(live):
        flag = client.put("/api/internal/flags/daemonRunIdStrict", json={"enabled": strict})
        assert flag.status_code == 200, flag.text
        thread = {
            "threadId": THREAD,
            "userId": "user-h",
            "repoFullName": "acme/hostile",
            "sandboxProvider": "local",
            "codesandboxId": BOX,
            "repoDir": str(repo),
        }
        created = client.post("/api/internal/threads", json=thread)
        assert created.status_code == 201, created.text
        started = client.post(
            "/api/internal/runs/start",
            json={
                "threadId": THREAD,
                "threadChatId": CHAT,
                "startRequestId": os.urandom(8).hex(),
                "triggerSource": "ui",
            },
        )
        assert started.status_code == 200, started.text
        body: dict[str, Any] = started.json()
        assert body["delivered"] is True
        return body


def post_legacy_terminal(live: LiveServer, token: str, timeout: float = QUICK) -> httpx.Response:
    """A v1 envelope without runId (what daemons in the field send) that ends the run."""
    envelope = {"threadId": THREAD, "threadChatId": CHAT, "payloadVersion": 1, "messages": RESULT}
    return httpx.post(
        live.url + "/api/daemon-event",
        json=envelope,
        headers={"X-Daemon-Token": token},
        timeout=timeout,
    )


def ui_validation(live: LiveServer) -> dict[str, Any]:
    with http(live) as client:
        response = client.get(f"/api/internal/ui-validation/{THREAD}/{CHAT}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def run_state(live: LiveServer, run_id: str) -> dict[str, Any]:
    with http(live) as client:
        response = client.get(f"/api/internal/runs/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def decide_while_polling_healthz(
    live: LiveServer, token: str, *, healthz_budget: float = 1.0
) -> tuple[httpx.Response, float, list[float]]:
    """Post the legacy terminal envelope in a thread and, until it is answered, poll `/healthz`
    on the same server; return (answer, its seconds, each /healthz latency). A /healthz that
    takes over `healthz_budget` fails the test (the event loop was held)."""
    result: dict[str, Any] = {}

    def decide() -> None:
        try:
            result["response"], result["seconds"] = timed(lambda: post_legacy_terminal(live, token))
        except Exception as exc:  # surfaced below, with the healthz timings
            result["error"] = exc

    worker = threading.Thread(target=decide, daemon=True)
    worker.start()
    latencies: list[float] = []
    with httpx.Client(base_url=live.url, timeout=healthz_budget) as client:
        while worker.is_alive() or not latencies:
            started = time.monotonic()
            try:
                assert client.get("/healthz").status_code == 200
            except httpx.TimeoutException:
                raise AssertionError(
                    f"/healthz did not answer within {healthz_budget} s while the terminal "
                    f"envelope was decided (after {len(latencies)} quick answers)"
                ) from None
            latencies.append(time.monotonic() - started)
            worker.join(0.02)
    if "error" in result:
        raise AssertionError(f"the terminal envelope was not answered: {result['error']!r}")
    return result["response"], result["seconds"], latencies
