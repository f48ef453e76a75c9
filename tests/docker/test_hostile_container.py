"""Hostile `docker` sandboxes (the container is the attacker): a checkout whose git config would
run code, a git that floods or never ends, a container killed in the middle of a read.

Every case drives the real service: run start (reads `runStartSha`), then a legacy terminal
envelope (reads HEAD, the UI rules file, and the changed paths by exec'ing git in the
container). Each must be answered in bounded time, 200, with the reason in the run's decision,
and nothing may run in the service's process tree (no git child of this process, no marker on
the host) — nor, for configured commands, even inside the container.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docker.support import (
    CHAT,
    git_children,
    live_service,
    post_envelope,
    register,
    run_state,
    sandbox,
    start_run,
    ui_validation,
)
from tests.fixtures.live_server import LiveServer
from tools.docker_sandbox.containers import DockerSandbox

READ_TIMEOUT = 2.0
"""The service's DOCKER_READ_TIMEOUT in these tests."""
QUICK = 12.0
"""Seconds within which a hostile terminal envelope must be answered (reads are bounded by
READ_TIMEOUT each; a healthy one takes well under a second)."""


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    with live_service(settings, DOCKER_READ_TIMEOUT=READ_TIMEOUT) as server:
        yield server


@pytest.fixture(name="marks")
def fx_marks() -> Iterator[Path]:
    """A host directory, also mounted at the same path in the container: a command that runs
    in either place leaves its marker here."""
    path = Path(tempfile.mkdtemp(prefix="tg-marks-"))
    path.chmod(0o777)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _legacy_run(live: LiveServer, box: DockerSandbox, thread: str) -> dict[str, Any]:
    register(live, box, thread, strict=False)
    started = start_run(live, thread)
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    assert body["delivered"] is True
    return body


def _terminal(live: LiveServer, token: str, thread: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = post_envelope(
        live,
        token,
        {
            "threadId": thread,
            "threadChatId": CHAT,
            "payloadVersion": 1,
            "messages": [{"type": "result", "is_error": False}],
        },
        timeout=QUICK + 5,
    )
    return answer, time.monotonic() - began


def _box(image: str, marks: Path) -> Any:
    # Daemon envelopes are v1 like the legacy terminal the test sends (one version per run).
    return sandbox(
        image,
        agent_args=["--hang", "--messages", "0", "--commits", "0"],
        daemon_args=["--payload-version", "1"],
        mounts=[(marks, str(marks))],
    )


def test_checkout_git_config_runs_nothing(live: LiveServer, docker_image: str, marks: Path) -> None:
    with _box(docker_image, marks) as box:
        touch = f"touch {marks}/ran"
        box.exec(
            "sh",
            "-c",
            "mkdir -p agent-hooks && printf '*.py filter=evil diff=evil\\n' > .gitattributes",
        )
        box.exec(
            "sh",
            "-c",
            f"printf '#!/bin/sh\\n{touch}\\n' > agent-hooks/post-index-change && chmod +x agent-hooks/post-index-change",
        )
        box.git("add", "-A")
        box.git("commit", "-q", "-m", "attributes and hooks")
        config = (
            ("core.fsmonitor", f"{touch}-fsmonitor; false"),
            ("core.hooksPath", "agent-hooks"),
            ("filter.evil.clean", f"{touch}-clean; cat"),
            ("filter.evil.process", f"{touch}-process"),
            ("filter.evil.required", "true"),
            ("diff.external", f"{touch}-external"),
            ("diff.evil.textconv", f"{touch}-textconv; cat"),
            ("core.pager", f"{touch}-pager"),
        )
        box.exec("sh", "-c", " && ".join(f"git config {k} {shlex.quote(v)}" for k, v in config))
        start = _legacy_run(live, box, "thread-h1")
        box.exec("sh", "-c", "echo changed >> README.md && mkdir -p src && echo x > src/server.py")
        answer, seconds = _terminal(live, start["daemonMessage"]["token"], "thread-h1")
        assert answer.status_code == 200, answer.text
        assert seconds < QUICK
        assert list(marks.iterdir()) == []  # not on the host, not in the container
        outcome = ui_validation(live, "thread-h1")
        # The checkout was really read: only README.md and src/server.py changed, no UI path.
        assert outcome["uiValidationOutcome"] == "not_required", outcome


@pytest.mark.parametrize(
    "fake_git",
    [
        "import sys\nwhile True: sys.stdout.write('A' * 65536)\n",
        "import time\nwhile True: time.sleep(60)\n",
    ],
    ids=["floods", "never-ends"],
)
def test_a_git_that_floods_or_stalls_is_inconclusive_in_bounded_time(
    live: LiveServer, docker_image: str, marks: Path, fake_git: str
) -> None:
    with _box(docker_image, marks) as box:
        start = _legacy_run(live, box, "thread-h2")
        _replace_git(box, fake_git)
        answer, seconds = _terminal(live, start["daemonMessage"]["token"], "thread-h2")
        assert answer.status_code == 200, answer.text
        assert seconds < QUICK
        assert git_children() == []
        assert ui_validation(live, "thread-h2")["uiValidationOutcome"] == "inconclusive"
        run = run_state(live, start["runId"])
        assert run["status"] == "finished"
        # HEAD is read by copying the ref files out: the container's git is never asked.
        assert run["diffSourceContext"].startswith("end_sha_missing")  # a v1 envelope has none


def test_a_container_killed_mid_read_is_answered_at_once(
    live: LiveServer, docker_image: str, marks: Path
) -> None:
    with _box(docker_image, marks) as box:
        start = _legacy_run(live, box, "thread-h3")
        _replace_git(
            box,
            f"import pathlib, time\npathlib.Path({str(marks / 'reading')!r}).touch()\n"
            "while True: time.sleep(60)\n",
        )
        result: dict[str, Any] = {}

        def decide() -> None:
            result["answer"], result["seconds"] = _terminal(
                live, start["daemonMessage"]["token"], "thread-h3"
            )

        worker = threading.Thread(target=decide, daemon=True)
        worker.start()
        deadline = time.monotonic() + QUICK
        while not (marks / "reading").exists():  # the service is inside the read
            assert time.monotonic() < deadline, "the read never started"
            time.sleep(0.02)
        assert git_children() == []  # git runs in the container, not under the service
        subprocess.run(["docker", "kill", box.name], check=True, capture_output=True)
        worker.join(QUICK + 5)
        assert not worker.is_alive()
        assert result["answer"].status_code == 200, result["answer"].text
        assert ui_validation(live, "thread-h3")["uiValidationOutcome"] == "inconclusive"
        assert run_state(live, start["runId"])["status"] == "finished"


def test_head_that_is_a_fifo_is_not_read(live: LiveServer, docker_image: str, marks: Path) -> None:
    with _box(docker_image, marks) as box:
        register(live, box, "thread-h4", strict=True)
        started = start_run(live, "thread-h4")
        assert started.status_code == 200, started.text
        message = started.json()["daemonMessage"]
        head = box.head()
        box.exec(
            "sh",
            "-c",
            "mv .git/HEAD .git/HEAD.real && python3 -c \"import os; os.mkfifo('.git/HEAD')\"",
        )
        answer = post_envelope(
            live,
            message["token"],
            {
                "threadId": "thread-h4",
                "threadChatId": CHAT,
                "payloadVersion": 2,
                "runId": message["runId"],
                "eventId": "e-fifo",
                "seq": 1000,
                "endSha": head,
                "messages": [{"type": "result", "is_error": False}],
            },
            timeout=QUICK,
        )
        assert answer.status_code == 200, answer.text
        run = run_state(live, message["runId"])
        assert run["diffSource"] == "working-tree-fallback"
        assert "a FIFO, not a regular file" in run["diffSourceContext"], run["diffSourceContext"]


def _replace_git(box: DockerSandbox, program: str) -> None:
    """The container's own git becomes `program` (it is the container's to change)."""
    box.exec(
        "python3",
        "-c",
        "import os, sys; p = '/usr/bin/git'; os.remove(p); "
        "open(p, 'w').write('#!/usr/bin/python3\\n' + sys.argv[1]); os.chmod(p, 0o755)",
        program,
    )
