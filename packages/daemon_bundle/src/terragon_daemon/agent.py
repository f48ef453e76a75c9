"""The agent subprocess: spawn it in the repo, read its stdout/stderr lines, signal it.

The agent runs in its own process group so `stop`/`kill` reach anything it started. Reading is
`selectors`-based with a timeout, so the run can flush batches on its interval while the agent
is quiet. End of output is both pipes closed, or the agent exited and its pipes stayed silent for
`EXIT_DRAIN_SECONDS` (a grandchild that kept stdout open does not hold the run hostage).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Final

EXIT_DRAIN_SECONDS: Final = 1.0
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
_SHA: Final = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass
class Output:
    """Lines read in one `read` call, and whether the agent's output has ended."""

    stdout: list[bytes] = field(default_factory=list)
    stderr: list[bytes] = field(default_factory=list)
    ended: bool = False


class AgentProcess:
    """One running agent."""

    def __init__(self, argv: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> None:
        self.argv = tuple(argv)
        self._proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._selector = selectors.DefaultSelector()
        self._buffers: dict[int, bytearray] = {}
        for name, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ, (name, stream))
            self._buffers[stream.fileno()] = bytearray()
        self._exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def read(self, timeout: float) -> Output:
        """Wait up to `timeout` seconds for output; return complete lines."""
        out = Output()
        if self._selector.get_map():
            for key, _ in self._selector.select(max(timeout, 0.0)):
                name, stream = key.data
                self._read_stream(stream, name, out)
        now = time.monotonic()
        if self._proc.poll() is not None and self._exited_at is None:
            self._exited_at = now
        drained = self._exited_at is not None and now - self._exited_at >= EXIT_DRAIN_SECONDS
        if not self._selector.get_map() or drained:
            for fd, buffer in self._buffers.items():
                if buffer:
                    name = "stdout" if fd == self._fd("stdout") else "stderr"
                    getattr(out, name).append(bytes(buffer))
                    buffer.clear()
            out.ended = True
        return out

    def _fd(self, name: str) -> int:
        stream = self._proc.stdout if name == "stdout" else self._proc.stderr
        assert stream is not None
        return stream.fileno()

    def _read_stream(self, stream: IO[bytes], name: str, out: Output) -> None:
        fd = stream.fileno()
        buffer = self._buffers[fd]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._selector.unregister(stream)
            if buffer:
                getattr(out, name).append(bytes(buffer))
                buffer.clear()
            return
        buffer.extend(chunk)
        *lines, rest = bytes(buffer).split(b"\n")
        buffer[:] = rest if len(rest) <= MAX_LINE_BYTES else b""
        getattr(out, name).extend(line for line in lines if line.strip())

    def signal(self, sig: int) -> None:
        """Send `sig` to the agent's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def close(self) -> None:
        """Release the pipes (after the agent's output ended)."""
        self._selector.close()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()


def read_head_sha(repo_dir: str | None) -> str | None:
    """`git rev-parse HEAD` in `repo_dir`, or None when unreadable."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _SHA.match(sha) else None
