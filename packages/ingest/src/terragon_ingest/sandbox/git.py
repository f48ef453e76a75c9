"""Git against an untrusted checkout, running nothing the checkout controls (CONTRACT §4).

Git executes commands named by a repository's own configuration: `core.fsmonitor` on
`status`/`diff`, `filter.<driver>.clean|process` (selected by `.gitattributes`) whenever it hashes
a work-tree file, `core.hooksPath` hooks, `diff.external`, `diff.<driver>.textconv|command`,
pagers, submodules' own configs, lazy fetches of a partial clone. Overriding known keys on the
command line is not enough on its own: driver names are arbitrary, and a key listed before the
command runs can be added by a process in the sandbox just after (a race we cannot win).

So git never reads the checkout's configuration. Each read gets a **private git directory**
(`PrivateGitDir`): a temporary directory of ours whose `config` we write, whose `HEAD` is a
copy, and whose `objects`, `refs`, `packed-refs`, `info` and `index` are symlinks to the
checkout's `.git`. Git is pointed at it with `GIT_DIR` and at the checkout with `GIT_WORK_TREE`:
with no driver, hook, fsmonitor, pager or promisor remote defined anywhere, attributes in the
tree select nothing and there is nothing to run. On top of that (defence in depth):

- the dangerous keys are also overridden on the command line, `--no-ext-diff --no-textconv`,
  submodules are compared by commit only (`--ignore-submodules=dirty`: git then never starts a
  git inside a submodule, whose own config would apply), `protocol.allow=never`;
- no system or global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`, `HOME` and
  `XDG_CONFIG_HOME` an empty directory of ours) and a minimal environment: nothing of the
  service's (no `DATABASE_URL`, no `TERRAGON_*`, no `GITHUB_*`) reaches git;
- git runs in its own process group, killed whole on timeout, with its output capped (a checkout
  with millions of untracked files does not exhaust memory): both are `SandboxReadError`.

A checkout whose `.git` is not a real directory (a `gitdir:` file or a symlink) is not read: it
can name any repository on the host. Data-only settings that change what git reports (object
format, file mode, CRLF handling) are carried over from the checkout's config, parsed by git from
a copy (no includes followed), values restricted to short tokens. `safe.directory` is not needed:
the git directory git opens is ours.

Why not a library that reads the object store without executing anything (pygit2, dulwich):
a call into it runs in a thread that cannot be killed when a hostile, huge checkout makes it run
for minutes; a subprocess can be killed, with its memory capped by what we read from it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import structlog

from terragon_ingest.sandbox.errors import SandboxFileRefused, SandboxReadError
from terragon_ingest.sandbox.files import open_checkout, read_confined

log = structlog.get_logger()

GIT_TIMEOUT_SECONDS = 10.0
"""Per git command; past it the process group is killed."""
MAX_GIT_OUTPUT_BYTES = 16 * 1024 * 1024
"""Per git command (about 300 000 changed paths); past it the read fails, inconclusive."""
MAX_GIT_STDERR_BYTES = 4096
MAX_HEAD_BYTES = 4096
MAX_CONFIG_BYTES = 1024 * 1024

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
LINKED = ("objects", "refs", "packed-refs", "info", "index")
"""What git reads from the checkout's `.git` (data only); everything else there is ignored."""

COMMAND_LINE_OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.attributesFile=/dev/null",
    "core.askPass=",
    "core.sshCommand=false",
    "diff.external=",
    "protocol.allow=never",
    "submodule.recurse=false",
)
"""Defence in depth: none of these is defined in the private git directory anyway."""

CARRIED_KEYS = frozenset(
    {
        "core.filemode",
        "core.symlinks",
        "core.ignorecase",
        "core.precomposeunicode",
        "core.autocrlf",
        "core.eol",
        "core.checkstat",
        "core.trustctime",
    }
)
"""Settings of the checkout's config that only change what git reports, never what it runs."""
OBJECT_FORMATS = frozenset({"sha1", "sha256"})
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{0,32}")


@cache
def git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise SandboxReadError("git is not installed on the service's host (PATH has no git)")
    return found


@dataclass(frozen=True, slots=True)
class PrivateGitDir:
    """A git directory of ours over a checkout's data (see the module docstring)."""

    path: Path
    work_tree: str
    config_args: tuple[str, ...] = ()
    """`-c key=value` pairs carried over from the checkout's config (data-only keys)."""

    @property
    def home(self) -> Path:
        return self.path / "home"

    def env(self) -> dict[str, str]:
        """Everything git's environment holds: nothing inherited from the service."""
        return {
            "PATH": SAFE_PATH,
            "LC_ALL": "C",
            "LANG": "C",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home),
            "GIT_DIR": str(self.path),
            "GIT_WORK_TREE": self.work_tree,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_SYSTEM": "/dev/null",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_OPTIONAL_LOCKS": "0",  # read-only: never rewrite the index
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_NO_LAZY_FETCH": "1",
            "GIT_PAGER": "cat",
        }

    async def run(self, *args: str) -> bytes:
        """`git args…` in the private directory; its stdout, or `SandboxReadError`."""
        overrides = [part for kv in COMMAND_LINE_OVERRIDES for part in ("-c", kv)]
        argv = [git_binary(), "--no-pager", *overrides, *self.config_args, *args]
        return await run_capped(
            argv,
            env=self.env(),
            cwd=str(self.path),
            what=f"git {args[0]} in {self.work_tree!r}",
            time_limit=GIT_TIMEOUT_SECONDS,
            max_output=MAX_GIT_OUTPUT_BYTES,
        )


@asynccontextmanager
async def private_git_dir(repo_dir: str) -> AsyncIterator[PrivateGitDir]:
    """A `PrivateGitDir` over `repo_dir`'s `.git`, removed afterwards."""
    path, sandbox_config = await asyncio.to_thread(_prepare, repo_dir)
    try:
        private = PrivateGitDir(path, repo_dir)
        if sandbox_config:
            private = await _carry_config(private, sandbox_config)
        yield private
    finally:
        # rmtree unlinks the symlinks into the checkout; it never follows them.
        await asyncio.to_thread(shutil.rmtree, path, True)


def _prepare(repo_dir: str) -> tuple[Path, bytes]:
    """Check the checkout, make the private directory; return it and the checkout's config."""
    git_binary()
    root_fd = open_checkout(repo_dir)
    try:
        try:
            st = os.stat(".git", dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise SandboxReadError(f"{repo_dir!r} has no .git: not a git checkout") from None
    finally:
        os.close(root_fd)
    if not stat.S_ISDIR(st.st_mode):
        raise SandboxReadError(
            f"{repo_dir!r}/.git is not a directory (a gitdir: file or a symlink, e.g. a linked "
            "worktree or a submodule checkout): it can name any repository on this host, so "
            "it is not read; give the sandbox a checkout with its own .git directory"
        )
    try:
        head = read_confined(repo_dir, ".git/HEAD", MAX_HEAD_BYTES)
        config = read_confined(repo_dir, ".git/config", MAX_CONFIG_BYTES) or b""
    except SandboxFileRefused as exc:
        raise SandboxReadError(f"the checkout's git metadata is not readable: {exc}") from exc
    if head is None:
        raise SandboxReadError(f"{repo_dir!r}/.git has no HEAD: not a git checkout")
    path = Path(tempfile.mkdtemp(prefix="terragon-git-"))
    try:
        (path / "home").mkdir()
        (path / "HEAD").write_bytes(head)
        _write_config(path, object_format=None)
        (path / "sandbox-config").write_bytes(config)
        dot_git = Path(repo_dir) / ".git"
        for name in LINKED:
            (path / name).symlink_to(dot_git / name)
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise SandboxReadError(f"cannot prepare a private git directory: {exc}") from exc
    return path, config


def _write_config(path: Path, object_format: str | None) -> None:
    lines = ["[core]", f"\trepositoryformatversion = {1 if object_format else 0}", "\tbare = false"]
    if object_format:
        lines += ["[extensions]", f"\tobjectformat = {object_format}"]
    (path / "config").write_text("\n".join(lines) + "\n")


_carried_cache: dict[bytes, tuple[str | None, tuple[str, ...]]] = {}
_CARRIED_CACHE_SIZE = 256


async def _carry_config(private: PrivateGitDir, sandbox_config: bytes) -> PrivateGitDir:
    """Data-only settings of the checkout's config, parsed by git from our copy. The result
    depends only on the config's bytes: cached by their digest (a config rarely changes, and
    this saves a git process per read)."""
    digest = hashlib.sha256(sandbox_config).digest()
    cached = _carried_cache.get(digest)
    if cached is None:
        config_file = str(private.path / "sandbox-config")
        listed = await private.run("config", "--file", config_file, "--list", "-z")
        cached = _carried(listed)
        if len(_carried_cache) >= _CARRIED_CACHE_SIZE:
            _carried_cache.clear()
        _carried_cache[digest] = cached
    object_format, args = cached
    if object_format is not None:
        await asyncio.to_thread(_write_config, private.path, object_format)
    return PrivateGitDir(private.path, private.work_tree, args)


def _carried(listed: bytes) -> tuple[str | None, tuple[str, ...]]:
    """`git config --list -z` output → (object format if not sha1, `-c` arguments)."""
    values: dict[str, str] = {}
    for entry in listed.split(b"\0"):
        key, _, value = entry.decode("utf-8", errors="replace").partition("\n")
        carried = key in CARRIED_KEYS or key == "extensions.objectformat"
        if carried and _TOKEN.fullmatch(value):
            values[key] = value  # the last one wins, as in git
    object_format = values.pop("extensions.objectformat", None)
    if object_format not in OBJECT_FORMATS or object_format == "sha1":
        object_format = None
    args = tuple(part for key, value in sorted(values.items()) for part in ("-c", f"{key}={value}"))
    return object_format, args


async def run_capped(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    what: str,
    time_limit: float,
    max_output: int,
) -> bytes:
    """Run `argv` in a process group of its own; its stdout up to `max_output` bytes. Past the
    timeout or the cap, or when the caller is cancelled, the whole group is killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group: killed whole
        )
    except OSError as exc:
        raise SandboxReadError(f"cannot run {what}: {exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.ensure_future(_read_capped(proc.stdout, max_output, what)),
        asyncio.ensure_future(_read_capped(proc.stderr, MAX_GIT_STDERR_BYTES, what, truncate=True)),
    ]
    try:
        async with asyncio.timeout(time_limit):
            out, err = await asyncio.gather(*readers)
            code = await proc.wait()
    except TimeoutError:
        raise SandboxReadError(f"{what} timed out after {time_limit:g} s") from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
        # A reader that outlived the other's error would race the drain for its stream; and a
        # pipe left full (reading paused) never reaches EOF, so wait() could wait for it forever:
        # stop the readers, drain both pipes to their end, then reap (each step bounded).
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await _drain(proc)
        with suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await proc.wait()
    if code != 0:
        message = err.decode(errors="replace").strip()
        raise SandboxReadError(f"{what} failed (exit {code}): {message}")
    return out


async def _read_capped(
    stream: asyncio.StreamReader, limit: int, what: str, *, truncate: bool = False
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        if size + len(chunk) > limit:
            if not truncate:
                raise SandboxReadError(
                    f"{what} wrote more than {limit} bytes: too much to read (too many changes?)"
                )
            chunk = chunk[: limit - size]  # keep draining: the child never blocks on a full pipe
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    """Read the killed group's pipes to their end, so their transport closes now (not at
    garbage collection, possibly after the loop). Bounded: a process that left the group and
    holds a pipe open is given up on."""
    try:
        async with asyncio.timeout(1.0):
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    while await stream.read(65536):
                        pass
    except TimeoutError:
        log.warning("sandbox_git_pipe_held_open", pid=proc.pid)


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
