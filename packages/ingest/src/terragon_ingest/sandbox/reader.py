"""The read-only sandbox reader used by run correlation: HEAD, changed paths, file contents.

Read-only by construction: it runs `git rev-parse`, `git diff`, `git status` and reads files;
it holds no database handle and cannot reach the run-context writers (import-linter contract
"sandbox reader is read-only"). `docker` sandboxes are read through the Engine API
(docker_reader.py). Providers without a reachable checkout raise `SandboxReadError`,
which correlation turns into `diffSource = working-tree-fallback` with the reason.

The checkout is the sandbox's, so reading it runs nothing it controls (CONTRACT §4): git runs
through a private git directory with a minimal environment (`git.py`), files are read without
following or blocking on anything (`files.py`).
"""

from __future__ import annotations

import asyncio
import re

from terragon_core import SandboxProvider
from terragon_ingest.sandbox.base import MAX_FILE_BYTES, SandboxReader, SandboxRef
from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)
from terragon_ingest.sandbox.docker_reader import DockerReader
from terragon_ingest.sandbox.errors import SandboxFileRefused, SandboxReadError
from terragon_ingest.sandbox.files import read_confined
from terragon_ingest.sandbox.git import private_git_dir
from terragon_ingest.settings import SandboxSettings

__all__ = [
    "MAX_FILE_BYTES",
    "DockerReader",
    "LocalGitReader",
    "SandboxFileRefused",
    "SandboxReadError",
    "SandboxReader",
    "SandboxRef",
    "UnreachableReader",
    "reader_for",
]

_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class LocalGitReader:
    """Reads a checkout on this machine (`local` provider)."""

    def _dir(self, sandbox: SandboxRef) -> str:
        if not sandbox.repo_dir:
            raise SandboxReadError(f"sandbox {sandbox.codesandbox_id!r} has no repoDir")
        return sandbox.repo_dir

    async def read_head_sha(self, sandbox: SandboxRef) -> str:
        async with private_git_dir(self._dir(sandbox)) as git:
            out = await git.run("rev-parse", "--verify", "HEAD")
        sha = out.decode("ascii", errors="replace").strip()
        if not _OBJECT_ID.fullmatch(sha):
            raise SandboxReadError(f"git rev-parse answered {sha[:80]!r}, not an object id")
        return sha

    async def changed_paths(self, sandbox: SandboxRef, base_sha: str | None) -> list[ChangedPath]:
        """Paths changed since `base_sha` (committed and uncommitted) plus untracked files."""
        diff_args = [
            "diff",
            "--name-status",
            "-z",
            "-M",
            "--no-ext-diff",
            "--no-textconv",
            "--ignore-submodules=dirty",  # compare submodule commits; never run git inside one
        ]
        if base_sha:
            if not _OBJECT_ID.fullmatch(base_sha):
                raise SandboxReadError(f"base {base_sha[:80]!r} is not an object id")
            diff_args.append(base_sha)
        diff_args.append("--")
        async with private_git_dir(self._dir(sandbox)) as git:
            tracked = parse_name_status_z(await git.run(*diff_args))
            status = await git.run(
                "status", "--porcelain", "-z", "--untracked-files=all", "--ignore-submodules=dirty"
            )
        return tracked + parse_untracked_porcelain_z(status)

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None:
        """A small regular file inside the checkout; None when absent, `SandboxFileRefused` for
        a FIFO, device, directory, symlink or a file over `MAX_FILE_BYTES`."""
        return await asyncio.to_thread(read_confined, self._dir(sandbox), path, MAX_FILE_BYTES)


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


def reader_for(provider: SandboxProvider, settings: SandboxSettings | None = None) -> SandboxReader:
    """One reader per provider (a new provider is one module and one line here); `settings`
    default to the environment's."""
    if provider is SandboxProvider.LOCAL:
        return LocalGitReader()
    if provider is SandboxProvider.DOCKER:
        return DockerReader(settings or SandboxSettings())
    return UnreachableReader()
