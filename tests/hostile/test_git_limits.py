"""What a read of the sandbox may cost: git blocked by a FIFO is killed at the timeout (its whole
process group), output past the cap ends the read — both are `SandboxReadError`, which the
terminal decision turns into `inconclusive` rather than waiting or exhausting memory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from terragon_core import SandboxProvider
from terragon_ingest.sandbox import git as sandbox_git
from terragon_ingest.sandbox.errors import SandboxReadError
from terragon_ingest.sandbox.git import run_capped
from terragon_ingest.sandbox.reader import LocalGitReader, SandboxRef
from tests.fixtures.live_server import LiveServer
from tests.fixtures.sandbox import (
    QUICK,
    live_service,
    make_checkout,
    post_legacy_terminal,
    start_local_run,
    timed,
    ui_validation,
    wait_for,
    write,
)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"echo $$ > {pidfile}; sleep 60 & sleep 60"
    started = time.monotonic()
    with pytest.raises(SandboxReadError, match="timed out"):
        await run_capped(
            ["/bin/sh", "-c", script],
            env={"PATH": "/usr/bin:/bin"},
            cwd=str(tmp_path),
            what="sh",
            time_limit=0.5,
            max_output=1024,
        )
    assert time.monotonic() - started < 2.0
    pgid = int(pidfile.read_text())
    wait_for(lambda: not _group_members(pgid), 2.0, "the background sleep to be killed too")


async def test_output_over_the_cap_is_refused_and_the_writer_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(SandboxReadError, match="more than 65536 bytes"):
        await run_capped(
            ["/bin/sh", "-c", f"echo $$ > {pidfile}; exec yes"],
            env={"PATH": "/usr/bin:/bin"},
            cwd=str(tmp_path),
            what="yes",
            time_limit=5.0,
            max_output=65536,
        )
    assert time.monotonic() - started < 2.0
    pgid = int(pidfile.read_text())
    wait_for(lambda: not _group_members(pgid), 2.0, "`yes` to be killed")


async def test_many_untracked_files_over_the_cap_are_a_read_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_checkout(tmp_path / "sandbox")
    for i in range(200):
        write(repo, f"flood/{'f' * 100}{i:04d}.txt")
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(repo))
    assert len(await LocalGitReader().changed_paths(sandbox, None)) == 200
    monkeypatch.setattr(
        sandbox_git, "MAX_GIT_OUTPUT_BYTES", 10_000
    )  # 200 paths of ~110 bytes > cap
    with pytest.raises(SandboxReadError, match="more than 10000 bytes"):
        await LocalGitReader().changed_paths(sandbox, None)


@pytest.fixture(name="live")
def fx_live(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setattr(sandbox_git, "GIT_TIMEOUT_SECONDS", 1.0)
    with live_service(settings) as server:
        yield server


def test_git_blocked_by_a_fifo_is_killed_and_the_outcome_inconclusive(
    live: LiveServer, tmp_path: Path
) -> None:
    """A `.gitignore` that is a FIFO nobody writes: `git status` blocks opening it. The service
    kills it at the timeout and answers; the UI outcome is unknown, so inconclusive."""
    repo = make_checkout(tmp_path / "sandbox")
    started = start_local_run(live, repo)
    write(repo, "src/server.py", "changed\n")
    os.mkfifo(repo / ".gitignore")
    try:
        response, seconds = timed(
            lambda: post_legacy_terminal(live, started["daemonMessage"]["token"])
        )
        assert response.status_code == 200, response.text
        assert seconds < QUICK
        body = ui_validation(live)
        assert (body["uiValidationOutcome"], body["blockingReason"]) == ("inconclusive", None)
    finally:
        with suppress(OSError):  # nobody reads it any more: the git that did was killed
            os.close(os.open(repo / ".gitignore", os.O_WRONLY | os.O_NONBLOCK))
