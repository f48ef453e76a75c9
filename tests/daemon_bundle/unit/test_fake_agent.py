"""tools/fake_agent.py speaks Claude-like stream-json and really commits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.daemon_bundle.support import FAKE_AGENT, head_sha


def run_agent(repo: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, str(FAKE_AGENT), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_stream_ends_with_result_and_commits(repo: Path) -> None:
    before = head_sha(repo)
    code, lines = run_agent(repo, "--messages", "6", "--commits", "2")
    assert code == 0
    assert lines[0]["type"] == "system"
    assert lines[-1]["type"] == "result" and lines[-1]["is_error"] is False
    assert {m["type"] for m in lines[1:-1]} == {"assistant", "user"}
    assert len(lines) == 8
    uuids = [m["uuid"] for m in lines]
    assert len(set(uuids)) == len(uuids)
    log = subprocess.run(
        ["git", "log", "--format=%s", f"{before}..HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert log[:2] == ["fake agent: edit 2", "fake agent: edit 1"]
    assert (repo / "FAKE_AGENT_NOTES.md").read_text().count("- edit") == 2


def test_seed_makes_runs_repeatable(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    _, first = run_agent(tmp_path / "a", "--seed", "7", "--no-git", "--payload-bytes", "300")
    _, second = run_agent(tmp_path / "b", "--seed", "7", "--no-git", "--payload-bytes", "300")
    strip = [{k: v for k, v in m.items() if k not in ("duration_ms", "cwd")} for m in first]
    assert strip == [
        {k: v for k, v in m.items() if k not in ("duration_ms", "cwd")} for m in second
    ]
    texts = [
        c["text"]
        for m in first
        if m["type"] == "assistant"
        for c in m["message"]["content"]
        if c["type"] == "text"
    ]
    assert texts and all(len(t) == 300 for t in texts)


def test_omit_result_and_error_result(tmp_path: Path) -> None:
    code, lines = run_agent(tmp_path, "--no-git", "--omit-result", "--exit-code", "3")
    assert code == 3 and all(m["type"] != "result" for m in lines)
    code, lines = run_agent(tmp_path, "--no-git", "--error-result")
    assert code == 0 and lines[-1]["type"] == "result" and lines[-1]["is_error"] is True
