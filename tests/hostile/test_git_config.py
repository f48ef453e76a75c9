"""A checkout's own git configuration runs nothing in the service (CONTRACT §4, last bullets).

Each case plants, in a `local` sandbox's checkout, configuration that makes git run a command
(`touch MARKER`) or read somewhere else, then drives the real service through run start (which
reads `runStartSha`) and a legacy terminal envelope (which reads HEAD, the UI rules file and the
changed paths). Nothing may create a marker, and the decision must still be right: the agent
changed only `src/server.py`, so the UI outcome is `not_required` — which proves the checkout was
actually read, not merely refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.live_server import LiveServer
from tests.fixtures.sandbox import (
    QUICK,
    commit_all,
    git,
    live_service,
    make_checkout,
    post_legacy_terminal,
    run_state,
    start_local_run,
    timed,
    ui_validation,
    write,
)


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    with live_service(settings) as server:
        yield server


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def fsmonitor(repo: Path, marker: Path) -> None:
    git(repo, "config", "core.fsmonitor", f"{_touch(marker)}; false")


def clean_filter(repo: Path, marker: Path) -> None:
    write(repo, ".gitattributes", "*.py filter=evil\n*.md filter=evil\n")
    commit_all(repo, "attributes")
    git(repo, "config", "filter.evil.clean", f"{_touch(marker)}; cat")
    git(repo, "config", "filter.evil.smudge", f"{_touch(marker)}; cat")
    git(repo, "config", "filter.evil.required", "true")


def process_filter(repo: Path, marker: Path) -> None:
    write(repo, ".gitattributes", "*.py filter=lfsish\n")
    commit_all(repo, "attributes")
    git(repo, "config", "filter.lfsish.process", f"{_touch(marker)}; cat")


def external_diff(repo: Path, marker: Path) -> None:
    write(repo, ".gitattributes", "*.py diff=evil\n")
    commit_all(repo, "attributes")
    git(repo, "config", "diff.external", _touch(marker))
    git(repo, "config", "diff.evil.command", _touch(marker))
    git(repo, "config", "diff.evil.textconv", f"{_touch(marker)}; cat")


def hooks(repo: Path, marker: Path) -> None:
    names = ("post-index-change", "reference-transaction", "post-checkout", "fsmonitor-watchman")
    for hooks_dir in (repo / "agent-hooks", repo / ".git" / "hooks"):
        hooks_dir.mkdir(exist_ok=True)
        for name in names:
            hook = hooks_dir / name
            hook.write_text(f"#!/bin/sh\n{_touch(marker)}\n")
            hook.chmod(0o755)
    git(repo, "config", "core.hooksPath", str(repo / "agent-hooks"))
    commit_all(repo, "hooks")


def pager(repo: Path, marker: Path) -> None:
    for key in ("core.pager", "pager.status", "pager.diff", "pager.rev-parse"):
        git(repo, "config", key, f"{_touch(marker)}; cat")


def include(repo: Path, marker: Path) -> None:
    extra = repo.parent / "extra.gitconfig"
    extra.write_text(f'[core]\n\tfsmonitor = "{_touch(marker)}; false"\n')
    git(repo, "config", "include.path", str(extra))


def conditional_include(repo: Path, marker: Path) -> None:
    extra = repo.parent / "extra.gitconfig"
    extra.write_text(f'[core]\n\tfsmonitor = "{_touch(marker)}; false"\n')
    git(repo, "config", "includeIf.gitdir:/.path", str(extra))


def submodule(repo: Path, marker: Path) -> None:
    """A submodule whose own config has an fsmonitor and a clean filter, left dirty."""
    upstream = repo.parent / "sub-upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    write(upstream, "s.txt")
    write(upstream, ".gitattributes", "*.txt filter=evil\n")
    commit_all(upstream, "sub")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "sm")
    commit_all(repo, "submodule")
    sub = repo / "sm"
    git(sub, "config", "core.fsmonitor", f"{_touch(marker)}; false")
    git(sub, "config", "filter.evil.clean", f"{_touch(marker)}; cat")
    write(sub, "s.txt", "dirty\n")
    write(sub, "untracked.txt")


ATTACKS: dict[str, Callable[[Path, Path], None]] = {
    "fsmonitor": fsmonitor,
    "clean_filter": clean_filter,
    "process_filter": process_filter,
    "external_diff_and_textconv": external_diff,
    "hooks": hooks,
    "pager": pager,
    "include": include,
    "conditional_include": conditional_include,
    "submodule": submodule,
}


def _agent_changes_server_py(repo: Path) -> None:
    write(repo, "src/server.py", "changed by the agent\n")
    os.utime(repo / "src" / "server.py", (946684800, 946684800))  # stat-dirty: git must hash it
    write(repo, "README.md", "also changed, uncommitted\n")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_checkout_config_runs_nothing_at_run_start_or_terminal(
    live: LiveServer, tmp_path: Path, attack: str
) -> None:
    repo = make_checkout(tmp_path / "sandbox")
    marker = tmp_path / "MARKER"
    ATTACKS[attack](repo, marker)
    head = git(repo, "rev-parse", "HEAD")

    started = start_local_run(live, repo)
    assert not marker.exists(), f"{attack}: run start ran the checkout's command"
    assert started["runStartSha"] == head

    _agent_changes_server_py(repo)
    response, seconds = timed(lambda: post_legacy_terminal(live, started["daemonMessage"]["token"]))
    assert not marker.exists(), f"{attack}: the terminal envelope ran the checkout's command"
    assert response.status_code == 200, response.text
    assert response.json()["legacyMode"] is True
    assert seconds < QUICK
    assert ui_validation(live) | {"latestRunId": None} == {
        "latestRunId": None,
        "uiValidationOutcome": "not_required",
        "blockingReason": None,
    }


def test_config_include_of_a_fifo_does_not_stall_the_read(live: LiveServer, tmp_path: Path) -> None:
    repo = make_checkout(tmp_path / "sandbox")
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    started = start_local_run(live, repo)
    git(repo, "config", "include.path", str(fifo))
    _agent_changes_server_py(repo)
    try:
        response, seconds = timed(
            lambda: post_legacy_terminal(live, started["daemonMessage"]["token"])
        )
    finally:
        _release(fifo)
    assert response.status_code == 200, response.text
    assert seconds < QUICK
    assert ui_validation(live)["uiValidationOutcome"] == "not_required"


def test_core_worktree_elsewhere_is_not_what_is_read(live: LiveServer, tmp_path: Path) -> None:
    """`core.worktree` pointing at another directory (with a UI file in it) is ignored: the
    checkout directory the platform registered is the work tree."""
    repo = make_checkout(tmp_path / "sandbox")
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "App.tsx")
    started = start_local_run(live, repo)
    git(repo, "config", "core.worktree", str(elsewhere))
    _agent_changes_server_py(repo)
    response = post_legacy_terminal(live, started["daemonMessage"]["token"])
    assert response.status_code == 200, response.text
    assert ui_validation(live)["uiValidationOutcome"] == "not_required"


def test_a_dot_git_file_pointing_at_another_repository_is_not_read(
    live: LiveServer, tmp_path: Path
) -> None:
    """`.git` as a file (`gitdir: …`) can name any repository on the host (another tenant's, the
    service's own): the reader refuses it, so the run has no runStartSha and the outcome is
    inconclusive with the reason, instead of another repository's answer."""
    victim = make_checkout(tmp_path / "victim")
    write(victim, "web/App.tsx")
    repo = tmp_path / "sandbox" / "checkout"
    write(repo, "src/server.py")
    (repo / ".git").write_text(f"gitdir: {victim / '.git'}\n")

    started = start_local_run(live, repo)
    assert started["runStartSha"] is None
    response = post_legacy_terminal(live, started["daemonMessage"]["token"])
    assert response.status_code == 200, response.text
    run = run_state(live, started["runId"])
    assert run["diffSource"] == "working-tree-fallback"
    assert ui_validation(live)["uiValidationOutcome"] == "inconclusive"


def _release(fifo: Path) -> None:
    """Give a reader blocked on `fifo` an end of file (no-op when nobody reads it)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)
