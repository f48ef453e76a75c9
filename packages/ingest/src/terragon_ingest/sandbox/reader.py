"""The read-only sandbox reader used by run correlation: HEAD, changed paths, file contents.

Read-only by construction: it runs `git rev-parse`, `git diff`, `git status` and reads files;
it holds no database handle and cannot reach the run-context writers (import-linter contract
"sandbox reader is read-only"). Providers without a reachable checkout raise `SandboxReadError`,
which correlation turns into `diffSource = working-tree-fallback` with the reason.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from terragon_core import SandboxProvider
from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)

GIT_TIMEOUT_SECONDS = 10.0
MAX_FILE_BYTES = 256 * 1024


class SandboxReadError(Exception):
    """The sandbox could not be read (no checkout, git failed, timed out)."""


@dataclass(frozen=True, slots=True)
class SandboxRef:
    """What a reader needs to find a sandbox: its provider, id and checkout directory."""

    provider: SandboxProvider
    codesandbox_id: str
    repo_dir: str | None


class SandboxReader(Protocol):
    async def read_head_sha(self, sandbox: SandboxRef) -> str: ...

    async def changed_paths(
        self, sandbox: SandboxRef, base_sha: str | None
    ) -> list[ChangedPath]: ...

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None: ...


async def _git(repo_dir: str, *args: str) -> bytes:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # read-only: take no locks
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            repo_dir,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise SandboxReadError(f"cannot run git in {repo_dir!r}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SandboxReadError(f"git {args[0]} timed out in {repo_dir!r}") from None
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip()
        raise SandboxReadError(f"git {args[0]} failed in {repo_dir!r}: {message}")
    return out


class LocalGitReader:
    """Reads a checkout on this machine (`local` provider)."""

    def _dir(self, sandbox: SandboxRef) -> str:
        if not sandbox.repo_dir:
            raise SandboxReadError(f"sandbox {sandbox.codesandbox_id!r} has no repoDir")
        # Existence is checked by git itself (`-C` fails on a missing dir): no blocking stat here.
        return sandbox.repo_dir

    async def read_head_sha(self, sandbox: SandboxRef) -> str:
        out = await _git(self._dir(sandbox), "rev-parse", "--verify", "HEAD")
        return out.decode().strip()

    async def changed_paths(self, sandbox: SandboxRef, base_sha: str | None) -> list[ChangedPath]:
        """Paths changed since `base_sha` (committed and uncommitted) plus untracked files."""
        repo = self._dir(sandbox)
        diff_args = ["diff", "--name-status", "-z", "-M"]
        if base_sha:
            diff_args.append(base_sha)
        tracked = parse_name_status_z(await _git(repo, *diff_args))
        untracked = parse_untracked_porcelain_z(
            await _git(repo, "status", "--porcelain", "-z", "--untracked-files=all")
        )
        return tracked + untracked

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None:
        return await asyncio.to_thread(_read_file, self._dir(sandbox), path)


def _read_file(repo_dir: str, path: str) -> bytes | None:
    root = Path(repo_dir).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise SandboxReadError(f"path {path!r} escapes the checkout")
    try:
        with target.open("rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SandboxReadError(f"cannot read {path!r}: {exc}") from exc


class UnreachableReader:
    """Providers whose sandboxes this deployment cannot read (`manual`, remote ones)."""

    async def read_head_sha(self, sandbox: SandboxRef) -> str:
        raise SandboxReadError(
            f"provider {sandbox.provider.value!r} sandboxes are not readable here"
        )

    async def changed_paths(self, sandbox: SandboxRef, base_sha: str | None) -> list[ChangedPath]:
        raise SandboxReadError(
            f"provider {sandbox.provider.value!r} sandboxes are not readable here"
        )

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None:
        raise SandboxReadError(
            f"provider {sandbox.provider.value!r} sandboxes are not readable here"
        )


def reader_for(provider: SandboxProvider) -> SandboxReader:
    """One reader per provider."""
    if provider is SandboxProvider.LOCAL:
        return LocalGitReader()
    return UnreachableReader()
