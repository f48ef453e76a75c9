"""What git runs with: no secret of the service in its environment (CONTRACT §4).

Proved on the real child process, not on a wrapper: the checkout holds a FIFO where git must
read (a loose ref at run start, `.git/info/exclude` at the terminal envelope), so the service's
git blocks there; the test then reads that process's `/proc/<pid>/environ`, checks it, and lets
git go on by answering the FIFO. The service process here has secrets in its environment (the
test sets canaries), exactly as a deployed one has `DATABASE_URL` and `TERRAGON_*`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.runs import START_PATH, start_body
from tests.fixtures.sandbox import (
    AUTH,
    BOX,
    CHAT,
    QUICK,
    THREAD,
    daemon_socket,
    git,
    live_service,
    make_checkout,
    post_legacy_terminal,
    start_local_run,
    wait_for,
    write,
)

CANARY = "canary-secret-7f3a"
SECRETS = (
    "TERRAGON_INTERNAL_TOKEN",
    "TERRAGON_SIGNING_SECRET",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_TOKEN",
    "DATABASE_URL",
    "TERRAGON_DATABASE_URL",
    "AWS_SECRET_ACCESS_KEY",
)
ALLOWED = {"PATH", "LC_ALL", "LANG", "HOME", "XDG_CONFIG_HOME"}
"""Besides `GIT_*` switches, the only variables git may see."""


@pytest.fixture(name="live")
def fx_live(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    for name in SECRETS[1:]:
        monkeypatch.setenv(name, f"{CANARY}-{name}")
    with live_service(settings) as server:
        yield server


def _git_children() -> dict[int, dict[str, str]]:
    """Environments of this process's `git` children (the live server runs in this process)."""
    found: dict[int, dict[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if comm != "git" or ppid != os.getpid():
                continue
            raw = (entry / "environ").read_bytes()
        except (OSError, ValueError):
            continue  # exited meanwhile
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        found[int(entry.name)] = {k.decode(): v.decode(errors="replace") for k, v in pairs}
    return found


def _open_writer(fifo: Path) -> int | None:
    """A write end of `fifo` once a process waits to read it (opening it releases that reader)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def _assert_clean(environments: dict[int, dict[str, str]]) -> None:
    assert environments, "no git child of the service was seen"
    for pid, env in environments.items():
        extra = {k for k in env if k not in ALLOWED and not k.startswith("GIT_")}
        assert not extra, f"git (pid {pid}) sees {sorted(extra)}"
        leaked = [k for k, v in env.items() if CANARY in v or v == INTERNAL_TOKEN]
        assert not leaked, f"git (pid {pid}) sees the service's secrets: {leaked}"
        assert env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"


def test_git_at_run_start_sees_no_secret(live: LiveServer, tmp_path: Path) -> None:
    repo = make_checkout(tmp_path / "sandbox")
    head = git(repo, "rev-parse", "HEAD")
    ref = repo / ".git" / "refs" / "heads" / "main"
    ref.unlink()
    os.mkfifo(ref)  # rev-parse HEAD reads it: git blocks here until the test answers
    answer: dict[str, Any] = {}

    def start() -> None:
        with httpx.Client(base_url=live.url, headers=AUTH, timeout=30) as client:
            thread = {
                "threadId": THREAD,
                "userId": "user-h",
                "repoFullName": "acme/hostile",
                "sandboxProvider": "local",
                "codesandboxId": BOX,
                "repoDir": str(repo),
            }
            assert client.post("/api/internal/threads", json=thread).status_code == 201
            answer["response"] = client.post(
                START_PATH, json=start_body(THREAD, chat=CHAT, request_id="req-env")
            )

    with daemon_socket(live):
        worker = threading.Thread(target=start, daemon=True)
        worker.start()
        _assert_clean(wait_for(_git_children, QUICK, "git, blocked on the loose ref"))
        fd = wait_for(lambda: _open_writer(ref), QUICK, "git to read the loose ref")
        try:
            os.write(fd, f"{head}\n".encode())
        finally:
            os.close(fd)
        worker.join(QUICK)
    assert not worker.is_alive()
    assert answer["response"].status_code == 200, answer["response"].text
    assert answer["response"].json()["runStartSha"] == head


def test_git_at_the_terminal_envelope_sees_no_secret(live: LiveServer, tmp_path: Path) -> None:
    repo = make_checkout(tmp_path / "sandbox")
    started = start_local_run(live, repo)
    write(repo, "src/server.py", "changed\n")
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(exist_ok=True)
    exclude.unlink(missing_ok=True)
    os.mkfifo(exclude)  # `git status` reads it: git blocks here until the test answers
    answer: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: answer.update(
            response=post_legacy_terminal(live, started["daemonMessage"]["token"], timeout=30)
        ),
        daemon=True,
    )
    worker.start()
    _assert_clean(wait_for(_git_children, QUICK, "git status, blocked on info/exclude"))
    deadline = time.monotonic() + QUICK
    while worker.is_alive() and time.monotonic() < deadline:
        fd = _open_writer(exclude)  # an empty file each time git opens it: git goes on
        if fd is not None:
            os.close(fd)
        worker.join(0.01)
    assert not worker.is_alive()
    assert answer["response"].status_code == 200, answer["response"].text
