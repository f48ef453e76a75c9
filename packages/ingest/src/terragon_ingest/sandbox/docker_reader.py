"""The `docker` provider's read-only reader: a container's checkout, read from outside.

A thread's `codesandboxId` names the container, `repoDir` the checkout's absolute path inside
it. Nothing runs in the service's process tree: every read is a call to the Docker Engine API.

- **HEAD** (what `diffSource` is decided on): the ref files are copied out through the archive
  endpoint (`.git/HEAD`, then the loose ref or `packed-refs`, each one small regular file,
  size-capped before its bytes are read) and resolved here. No program runs anywhere, in the
  service or in the container, so a checkout's configuration cannot make anything run.
- **One file** (the UI rules): copied out the same way; only a small regular file is read.
- **Changed paths** (legacy mode's UI outcome only): `git diff` / `git status` run inside the
  container by `exec` — a fixed argv, no shell, our `-c` overrides and a minimal environment
  that holds nothing of the service's — and their output is untrusted text: capped in bytes,
  parsed strictly. Copying a work tree and its object store out to diff it here would cost the
  size of the repository per terminal envelope; the container can only lie about its own run,
  which it could do anyway by editing its files.

Every read is bounded by `DOCKER_READ_TIMEOUT`; a container that is gone, stalls, floods or
dies mid-read raises `SandboxReadError` (→ `working-tree-fallback` / `inconclusive`, with the
reason), never more.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TypeVar

from terragon_ingest.sandbox.base import MAX_FILE_BYTES, SandboxRef
from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)
from terragon_ingest.sandbox.docker_engine import DockerEngine, untrusted
from terragon_ingest.sandbox.errors import SandboxReadError
from terragon_ingest.sandbox.files import components
from terragon_ingest.sandbox.git import COMMAND_LINE_OVERRIDES, MAX_GIT_OUTPUT_BYTES
from terragon_ingest.settings import SandboxSettings

T = TypeVar("T")

MAX_REF_BYTES = 4096
MAX_PACKED_REFS_BYTES = 8 * 1024 * 1024
MAX_SYMREF_DEPTH = 5
MAX_FILTER_DRIVERS = 64
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF_NAME = re.compile(r"refs/[A-Za-z0-9._/-]{1,250}")
_REPO_DIR_MAX = 1024

EXEC_GIT_ENV = {
    "LC_ALL": "C",
    "LANG": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_NO_LAZY_FETCH": "1",
    "GIT_PAGER": "cat",
}
"""What an exec'd git gets on top of the container's own environment: constants only."""


def repo_dir_of(codesandbox_id: str, repo_dir: str | None) -> str:
    """The checkout's path inside the container: absolute, plain, no `..`."""
    if not repo_dir:
        raise SandboxReadError(f"docker sandbox {codesandbox_id!r} has no repoDir")
    if (
        not repo_dir.startswith("/")
        or len(repo_dir) > _REPO_DIR_MAX
        or "\0" in repo_dir
        or any(part in {".", ".."} for part in repo_dir.split("/"))
    ):
        raise SandboxReadError(
            f"repoDir {repo_dir[:80]!r} is not an absolute plain path inside the container"
        )
    return repo_dir.rstrip("/") or "/"


class DockerReader:
    """Reads a `docker` sandbox through the Engine API (see the module docstring)."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.engine = DockerEngine(settings.DOCKER_SOCKET)
        self.timeout = settings.DOCKER_READ_TIMEOUT

    async def _bounded(self, what: str, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except TimeoutError:
            raise SandboxReadError(
                f"{what} timed out after {self.timeout:g} s (container stalled?)"
            ) from None

    async def read_head_sha(self, sandbox: SandboxRef) -> str:
        repo = repo_dir_of(sandbox.codesandbox_id, sandbox.repo_dir)
        return await self._bounded(
            f"reading HEAD of {sandbox.codesandbox_id!r}", self._head(sandbox.codesandbox_id, repo)
        )

    async def _head(self, container: str, repo: str) -> str:
        head = await self.engine.read_file(container, f"{repo}/.git/HEAD", MAX_REF_BYTES)
        if head is None:
            await self.engine.inspect(container)  # a gone container says so, not "no HEAD"
            raise SandboxReadError(f"{repo!r} in {container!r} has no .git/HEAD: not a checkout")
        value = _text(head)
        packed: dict[str, str] | None = None
        for _ in range(MAX_SYMREF_DEPTH):
            if _OBJECT_ID.fullmatch(value):
                return value
            if not value.startswith("ref: "):
                raise SandboxReadError(f"HEAD of {container!r} holds {untrusted(value)}")
            ref = value.removeprefix("ref: ").strip()
            if not _REF_NAME.fullmatch(ref) or ".." in ref or "//" in ref:
                raise SandboxReadError(f"HEAD of {container!r} names {untrusted(ref)}")
            loose = await self.engine.read_file(container, f"{repo}/.git/{ref}", MAX_REF_BYTES)
            if loose is not None:
                value = _text(loose)
                continue
            if packed is None:
                packed = _packed_refs(
                    await self.engine.read_file(
                        container, f"{repo}/.git/packed-refs", MAX_PACKED_REFS_BYTES
                    )
                )
            if ref not in packed:
                raise SandboxReadError(f"{ref!r} in {container!r} has no commit yet")
            value = packed[ref]
        raise SandboxReadError(f"HEAD of {container!r} is a chain of over {MAX_SYMREF_DEPTH} refs")

    async def changed_paths(self, sandbox: SandboxRef, base_sha: str | None) -> list[ChangedPath]:
        """Paths changed since `base_sha` plus untracked files, from git run in the container."""
        repo = repo_dir_of(sandbox.codesandbox_id, sandbox.repo_dir)
        diff_args = [
            "diff",
            "--name-status",
            "-z",
            "-M",
            "--no-ext-diff",
            "--no-textconv",
            "--ignore-submodules=dirty",
        ]
        if base_sha:
            if not _OBJECT_ID.fullmatch(base_sha):
                raise SandboxReadError(f"base {base_sha[:80]!r} is not an object id")
            diff_args.append(base_sha)
        diff_args.append("--")
        status_args = [
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=dirty",
        ]

        async def both() -> list[ChangedPath]:
            off = await self._filters_off(sandbox.codesandbox_id, repo)
            tracked = parse_name_status_z(
                await self._git(sandbox.codesandbox_id, repo, [*off, *diff_args])
            )
            status = await self._git(sandbox.codesandbox_id, repo, [*off, *status_args])
            return tracked + parse_untracked_porcelain_z(status)

        return await self._bounded(f"reading the changes of {sandbox.codesandbox_id!r}", both())

    async def _filters_off(self, container: str, repo: str) -> list[str]:
        """`-c` overrides that empty every filter driver the checkout defines, so the read runs
        nothing configured in the container either (its own code in its own sandbox would be
        harmless to the service, but a read should have no side effects). Names are listed
        first (untrusted text, at most `MAX_FILTER_DRIVERS`); one added just after is the
        container's own doing."""
        listed = await self._git(
            container,
            repo,
            ["config", "-z", "--name-only", "--get-regexp", r"^filter\."],
            ok=(0, 1),
        )
        drivers = sorted(
            {
                name.removeprefix("filter.").rpartition(".")[0]
                for name in listed.decode("utf-8", errors="replace").split("\0")
                if name.startswith("filter.")
            }
            - {""}
        )
        if len(drivers) > MAX_FILTER_DRIVERS:
            raise SandboxReadError(
                f"the checkout in {container!r} defines {len(drivers)} filter drivers "
                f"(over {MAX_FILTER_DRIVERS}): not read"
            )
        return [
            part
            for driver in drivers
            for key in ("clean", "smudge", "process")
            for part in ("-c", f"filter.{driver}.{key}=")
        ] + [part for driver in drivers for part in ("-c", f"filter.{driver}.required=false")]

    async def _git(
        self, container: str, repo: str, args: list[str], ok: tuple[int, ...] = (0,)
    ) -> bytes:
        overrides = [part for kv in COMMAND_LINE_OVERRIDES for part in ("-c", kv)]
        result = await self.engine.exec(
            container,
            ["git", "--no-pager", *overrides, *args],
            env=EXEC_GIT_ENV,
            workdir=repo,
            stdin=None,
            max_stdout=MAX_GIT_OUTPUT_BYTES,
        )
        if result.exit_code not in ok:
            command = next((a for a in args if not a.startswith("-") and "=" not in a), "")
            raise SandboxReadError(
                f"git {command} in {container!r} failed (exit {result.exit_code}): "
                f"{untrusted(result.stderr)}"
            )
        return result.stdout

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None:
        """A small regular file inside the checkout (copied out); None when absent,
        `SandboxFileRefused` for anything else or a file over `MAX_FILE_BYTES`."""
        repo = repo_dir_of(sandbox.codesandbox_id, sandbox.repo_dir)
        inner = "/".join(components(path))
        return await self._bounded(
            f"reading {path!r} of {sandbox.codesandbox_id!r}",
            self.engine.read_file(sandbox.codesandbox_id, f"{repo}/{inner}", MAX_FILE_BYTES),
        )


def _text(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace").strip()


def _packed_refs(raw: bytes | None) -> dict[str, str]:
    """`packed-refs` lines `<oid> <ref>` (peeled `^` lines and comments skipped)."""
    refs: dict[str, str] = {}
    for line in (raw or b"").decode("ascii", errors="replace").splitlines():
        oid, _, name = line.partition(" ")
        if _OBJECT_ID.fullmatch(oid) and name:
            refs.setdefault(name.strip(), oid)
    return refs
