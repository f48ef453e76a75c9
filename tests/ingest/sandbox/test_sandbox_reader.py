"""The read-only reader against a real git checkout: HEAD, changed paths with hostile names
(renames with scores, spaces, newlines, non-ASCII, untracked), file reads that cannot escape."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from terragon_core import SandboxProvider
from terragon_ingest.sandbox.diff_parser import ChangedPath
from terragon_ingest.sandbox.reader import LocalGitReader, SandboxReadError, SandboxRef, reader_for


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, text=True).stdout.strip()  # fmt: skip


@pytest.fixture(name="repo")
def fx_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "public").mkdir()
    (repo / "public" / "logo.svg").write_text("<svg>" + "a" * 200 + "</svg>\n")
    (repo / "keep.txt").write_text("keep\n")
    (repo / "gone.css").write_text("gone\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


async def test_changed_paths_since_start_sha_with_hostile_names(repo: Path) -> None:
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(repo))
    reader = reader_for(SandboxProvider.LOCAL)
    start = await reader.read_head_sha(sandbox)
    assert start == git(repo, "rev-parse", "HEAD")
    (repo / "assets").mkdir()
    git(repo, "mv", "public/logo.svg", "assets/logo.svg")
    git(repo, "rm", "-q", "gone.css")
    (repo / "ünï côde.tsx").write_text("x\n")
    (repo / "line\nbreak.jsx").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "agent")
    (repo / "keep.txt").write_text("edited, uncommitted\n")
    (repo / "untracked dir").mkdir()
    (repo / "untracked dir" / "new file.scss").write_text("x\n")
    changes = await reader.changed_paths(sandbox, start)
    assert ChangedPath("R", "assets/logo.svg", "public/logo.svg") in changes
    assert ChangedPath("D", "gone.css") in changes
    assert ChangedPath("A", "ünï côde.tsx") in changes
    assert ChangedPath("A", "line\nbreak.jsx") in changes
    assert ChangedPath("M", "keep.txt") in changes
    assert ChangedPath("?", "untracked dir/new file.scss") in changes


async def test_read_file_is_confined_to_the_checkout(repo: Path) -> None:
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(repo))
    reader = LocalGitReader()
    assert await reader.read_file(sandbox, "keep.txt") == b"keep\n"
    assert await reader.read_file(sandbox, ".terragon/preview-validation.json") is None
    with pytest.raises(SandboxReadError):
        await reader.read_file(sandbox, "../../etc/passwd")


async def test_unreachable_providers_and_missing_checkouts_raise_read_errors(
    tmp_path: Path,
) -> None:
    manual = SandboxRef(SandboxProvider.MANUAL, "box", None)
    with pytest.raises(SandboxReadError, match="not readable"):
        await reader_for(SandboxProvider.MANUAL).read_head_sha(manual)
    missing = SandboxRef(SandboxProvider.LOCAL, "box", str(tmp_path / "nope"))
    with pytest.raises(SandboxReadError):
        await reader_for(SandboxProvider.LOCAL).read_head_sha(missing)


async def test_sha256_checkout_and_data_only_settings_are_carried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private git directory keeps what changes the answer (object format, core.filemode)
    and leaves nothing behind."""
    import tempfile

    private_tmp = tmp_path / "private-tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    repo = tmp_path / "sha256"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", "--object-format=sha256")
    (repo / "run.sh").write_text("echo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    git(repo, "config", "core.filemode", "false")
    (repo / "run.sh").chmod(0o755)  # not a change when core.filemode is false
    (repo / "App.tsx").write_text("x\n")
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(repo))
    reader = LocalGitReader()
    head = await reader.read_head_sha(sandbox)
    assert len(head) == 64 and head == git(repo, "rev-parse", "HEAD")
    assert await reader.changed_paths(sandbox, head) == [ChangedPath("?", "App.tsx")]
    assert list(private_tmp.iterdir()) == []


async def test_not_a_checkout_or_a_gitfile_is_a_read_error(repo: Path, tmp_path: Path) -> None:
    reader = LocalGitReader()
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SandboxReadError, match=r"no \.git"):
        await reader.read_head_sha(SandboxRef(SandboxProvider.LOCAL, "box", str(plain)))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / ".git").write_text(f"gitdir: {repo / '.git'}\n")
    with pytest.raises(SandboxReadError, match="not a directory"):
        await reader.read_head_sha(SandboxRef(SandboxProvider.LOCAL, "box", str(linked)))
    with pytest.raises(SandboxReadError, match="not an object id"):
        await reader.changed_paths(
            SandboxRef(SandboxProvider.LOCAL, "box", str(repo)), "--output=x"
        )
