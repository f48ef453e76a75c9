"""Helpers for the `docker` provider's tests (no tests here): a live service, a container with
the daemon inside, a thread on it, a run started over HTTP."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fixtures.runs import START_PATH, start_body
from tools.docker_sandbox.containers import REPO_DIR, DockerSandbox, start_sandbox

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
CHAT = "chat-d"


@contextmanager
def live_service(settings: Any, **sandbox: Any) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 (the containers share the host's network: their daemons post to
    the ingest URL the service hands out), with `sandbox` settings overridden."""
    port = free_port()
    settings = dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, PUBLIC_URL=f"http://127.0.0.1:{port}"),
        sandbox=dataclasses.replace(settings.sandbox, **sandbox),
    )
    server = LiveServer(settings, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def sandbox(image: str, **options: Any) -> Iterator[DockerSandbox]:
    box = start_sandbox(f"tg-test-{uuid.uuid4().hex[:10]}", image, **options)
    try:
        yield box
    finally:
        box.remove()


def http(live: LiveServer, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers=AUTH, timeout=timeout)


def register(live: LiveServer, box: DockerSandbox | str, thread: str, *, strict: bool) -> None:
    name = box if isinstance(box, str) else box.name
    with http(live) as client:
        flag = client.put("/api/internal/flags/daemonRunIdStrict", json={"enabled": strict})
        assert flag.status_code == 200, flag.text
        created = client.post(
            "/api/internal/threads",
            json={
                "threadId": thread,
                "userId": "user-d",
                "repoFullName": "acme/docker",
                "sandboxProvider": "docker",
                "codesandboxId": name,
                "repoDir": REPO_DIR,
            },
        )
        assert created.status_code == 201, created.text


def start_run(live: LiveServer, thread: str) -> httpx.Response:
    with http(live) as client:
        return client.post(START_PATH, json=start_body(thread, chat=CHAT))


def run_state(live: LiveServer, run_id: str) -> dict[str, Any]:
    with http(live) as client:
        response = client.get(f"/api/internal/runs/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def ui_validation(live: LiveServer, thread: str) -> dict[str, Any]:
    with http(live) as client:
        response = client.get(f"/api/internal/ui-validation/{thread}/{CHAT}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def post_envelope(
    live: LiveServer, token: str, body: dict[str, Any], timeout: float = 30.0
) -> httpx.Response:
    return httpx.post(
        live.url + "/api/daemon-event",
        json=body,
        headers={"X-Daemon-Token": token},
        timeout=timeout,
    )


def git_children() -> list[int]:
    """Processes under this one (the service runs in it) whose program is git."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[1])
    found: list[int] = []
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    gits = []
    for pid in found:
        try:
            argv0 = (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") or [b""])[0]
        except OSError:
            continue
        if argv0.endswith(b"git"):
            gits.append(pid)
    return gits
