"""Terminal envelopes against a real git checkout (`local` provider): endSha vs live HEAD, and the
legacy UI outcome from changed paths vs UI rules.

How the run is started: `POST /api/internal/runs/start` with a `local` thread would deliver the
start message to a live daemon socket, which these tests do not need. Instead they register the
thread over HTTP (`sandboxProvider: local`, `repoDir`) and call the run-start pieces directly —
`create_run_context`, the read-only reader's `read_head_sha`, `bind_run_sandbox`,
`mint_daemon_token` — which is exactly what run start does minus the delivery.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from terragon_core import SandboxProvider, TriggerSource
from terragon_ingest.db import create_pool
from terragon_ingest.runs import tokens
from terragon_ingest.runs.service import bind_run_sandbox, create_run_context
from terragon_ingest.sandbox.reader import LocalGitReader, SandboxRef
from tests.fixtures.daemon_events import envelope, legacy_envelope, post, run_state, set_strict
from tests.fixtures.runs import thread_body


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, text=True).stdout.strip()  # fmt: skip


def write(repo: Path, path: str, text: str = "x\n") -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


@pytest.fixture(name="repo")
def fx_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, "README.md")
    write(repo, "public/logo.png")
    write(repo, "src/server.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


async def start_local_run(client, database_url: str, repo: Path) -> tuple[str, str]:
    thread = thread_body(sandboxProvider="local", codesandboxId="box-1", repoDir=str(repo))
    assert (await client.post("/api/internal/threads", json=thread)).status_code == 201
    pool = create_pool(database_url, min_size=1, max_size=2, timeout=5)
    await pool.open(wait=True)
    try:
        context = await create_run_context(
            pool,
            thread_id="thread-1",
            thread_chat_id="chat-1",
            start_request_id=uuid.uuid4().hex,
            trigger_source=TriggerSource.UI,
        )
        sandbox = SandboxRef(SandboxProvider.LOCAL, "box-1", str(repo))
        start_sha = await LocalGitReader().read_head_sha(sandbox)
        await bind_run_sandbox(
            pool,
            run_id=context.run_id,
            codesandbox_id="box-1",
            sandbox_provider=SandboxProvider.LOCAL,
            run_start_sha=start_sha,
        )
        async with pool.connection() as conn:
            token = await tokens.mint_daemon_token(
                conn, run_id=context.run_id, thread_id="thread-1", user_id="user-1"
            )
    finally:
        await pool.close()
    return context.run_id, token


RESULT = [{"type": "assistant"}, {"type": "result", "is_error": False}]


async def test_end_sha_equal_to_live_head_is_diff_source_sha(client, database_url, repo) -> None:
    run_id, token = await start_local_run(client, database_url, repo)
    write(repo, "src/App.tsx")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agent work")
    head = git(repo, "rev-parse", "HEAD")
    assert (
        await post(client, envelope(run_id, 1, messages=RESULT, endSha=head), token)
    ).status_code == 200
    run = await run_state(client, run_id)
    assert (run["status"], run["diffSource"], run["runEndSha"]) == ("finished", "sha", head)
    assert run["runStartSha"] != head


async def test_end_sha_different_from_live_head_falls_back_with_the_reason(
    client, database_url, repo
) -> None:
    run_id, token = await start_local_run(client, database_url, repo)
    head = git(repo, "rev-parse", "HEAD")
    stale = "0" * 40
    assert (
        await post(client, envelope(run_id, 1, messages=RESULT, endSha=stale), token)
    ).status_code == 200
    run = await run_state(client, run_id)
    assert run["diffSource"] == "working-tree-fallback"
    assert run["diffSourceContext"] == f"end_sha_differs: endSha {stale} != live HEAD {head}"


async def test_unreadable_sandbox_falls_back_with_the_reason(client, database_url, repo) -> None:
    run_id, token = await start_local_run(client, database_url, repo)
    shutil.rmtree(repo)
    assert (
        await post(client, envelope(run_id, 1, messages=RESULT, endSha="1" * 40), token)
    ).status_code == 200
    run = await run_state(client, run_id)
    assert run["diffSource"] == "working-tree-fallback"
    assert run["diffSourceContext"].startswith("head_unreadable: ")
    assert str(repo) in run["diffSourceContext"]


async def _legacy_terminal(client, database_url, repo, change) -> dict:
    await set_strict(client, False)
    run_id, token = await start_local_run(client, database_url, repo)
    change(repo)
    response = await post(client, legacy_envelope(RESULT), token)
    assert response.status_code == 200 and response.json()["legacyMode"] is True
    run = await run_state(client, run_id)
    assert (run["status"], run["diffSource"]) == ("finished", "working-tree-fallback")
    outcome = await client.get("/api/internal/ui-validation/thread-1/chat-1")
    assert outcome.status_code == 200
    body = outcome.json()
    assert body["latestRunId"] == run_id
    return body


def _commit(repo: Path) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agent")


async def test_legacy_ui_paths_changed_is_inconclusive(client, database_url, repo) -> None:
    def change(r: Path) -> None:
        write(r, "src/components/naïve button.tsx")
        _commit(r)

    body = await _legacy_terminal(client, database_url, repo, change)
    assert body == body | {"uiValidationOutcome": "inconclusive", "blockingReason": None}


async def test_legacy_rename_out_of_public_counts_the_old_path(client, database_url, repo) -> None:
    def change(r: Path) -> None:
        git(r, "mv", "public/logo.png", "assets/logo.png") if (
            r / "assets"
        ).mkdir() is None else None
        _commit(r)

    body = await _legacy_terminal(client, database_url, repo, change)
    assert body["uiValidationOutcome"] == "inconclusive"


async def test_legacy_untracked_ui_file_with_spaces_is_inconclusive(
    client, database_url, repo
) -> None:
    body = await _legacy_terminal(
        client, database_url, repo, lambda r: write(r, "styles/main theme ☃.scss")
    )
    assert body["uiValidationOutcome"] == "inconclusive"


async def test_legacy_no_ui_paths_is_not_required(client, database_url, repo) -> None:
    def change(r: Path) -> None:
        write(r, "src/server.py", "changed\n")
        write(r, "docs/guide.mdx")  # excluded by default
        _commit(r)

    body = await _legacy_terminal(client, database_url, repo, change)
    assert (body["uiValidationOutcome"], body["blockingReason"]) == ("not_required", None)


async def test_legacy_repo_rules_file_with_excludes(client, database_url, repo) -> None:
    rules = {"schemaVersion": 1, "uiRules": ["web/**"], "excludes": ["web/docs/**"]}

    def change(r: Path) -> None:
        write(r, ".terragon/preview-validation.json", json.dumps(rules))
        write(r, "web/docs/intro.md")
        write(r, "src/App.tsx")  # a default UI glob, but the repo's rules replace the defaults
        _commit(r)

    body = await _legacy_terminal(client, database_url, repo, change)
    assert body["uiValidationOutcome"] == "not_required"


async def test_legacy_invalid_rules_file_is_inconclusive_ui_rules_invalid(
    client, database_url, repo
) -> None:
    def change(r: Path) -> None:
        write(r, ".terragon/preview-validation.json", '{"schemaVersion": 1, "uiRules": "*.tsx"}')
        _commit(r)

    body = await _legacy_terminal(client, database_url, repo, change)
    assert (body["uiValidationOutcome"], body["blockingReason"]) == (
        "inconclusive",
        "ui_rules_invalid",
    )


async def test_ui_validation_is_404_before_any_legacy_terminal(client) -> None:
    response = await client.get("/api/internal/ui-validation/thread-1/chat-1")
    assert response.status_code == 404
