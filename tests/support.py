"""Helpers shared by tests: settings for a test database, API shortcuts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from terragon_ingest.settings import Settings


def settings_for(
    database_url: str,
    valkey_url: str,
    data_dir: Path,
    *,
    preview: dict[str, Any] | None = None,
    **server: Any,
) -> Settings:
    """Settings for a test: the given servers, no background jobs, and preview upstreams on
    127.0.0.1 allowed (as `terragon up` allows them; SSRF tests pass `preview=` to refuse)."""
    base = Settings()
    return dataclasses.replace(
        base,
        preview=dataclasses.replace(
            base.preview, **{"ALLOW_PRIVATE_UPSTREAM": True, **(preview or {})}
        ),
        db=dataclasses.replace(base.db, URL=database_url, POOL_MIN=1, POOL_MAX=8),
        valkey=dataclasses.replace(base.valkey, URL=valkey_url),
        server=dataclasses.replace(
            base.server,
            DATA_DIR=data_dir,
            BACKGROUND_JOBS=False,
            PUBLIC_URL="http://testserver.local",
            **server,
        ),
    )


def good_secrets() -> dict[str, str]:
    """The secrets `terragon serve` requires, each made as an operator is told to make it
    (`MAKE_SECRET_COMMAND`): for tests and tools that start a real `serve`."""
    names = (
        "TERRAGON_INTERNAL_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "TERRAGON_SIGNING_SECRET",
        "TERRAGON_METRICS_TOKEN",
    )
    return {name: secrets.token_urlsafe(32) for name in names}


def thread_body(thread_id: str = "thread-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "threadId": thread_id,
        "userId": "user-1",
        "repoFullName": "acme/web",
        "sandboxProvider": "manual",
        "codesandboxId": f"sb-{thread_id}",
    }
    body.update(overrides)
    return body


class OutputLines:
    """A server's output (`up`, `serve`, `dashboard` log on stdout; start it with `stdout=PIPE,
    stderr=STDOUT` so a refusal or a crash is read too), read on a thread so the test can wait
    for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self._stream:
            self.lines.append(raw.decode(errors="replace"))

    def text(self) -> str:
        return "".join(self.lines)

    def find(self, predicate: Callable[[str], bool]) -> str | None:
        return next((line for line in list(self.lines) if predicate(line)), None)

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (line := self.find(lambda line: needle in line)) is None:
            assert time.monotonic() < deadline, f"timed out waiting for {needle!r} in the output"
            time.sleep(0.05)
        return line

    def count(self, needle: str) -> int:
        return sum(needle in line for line in list(self.lines))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@contextlib.contextmanager
def terragon_serving(
    args: list[str], env: dict[str, str], port: int, *, timeout: float = 60.0
) -> Iterator[OutputLines]:
    """`terragon ARGS` (a command that serves on `port`) in a child process, yielded once its
    `/readyz` answers 200 (its output for the test to read); stopped with SIGTERM, killed after
    30 s."""
    import signal
    import sys
    import urllib.request

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    terragon = str(Path(sys.executable).parent / "terragon")
    proc = subprocess.Popen(
        [terragon, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = OutputLines(proc)
    try:
        wait_until(lambda: ready() or proc.poll() is not None, timeout, f"`terragon {args[0]}`")
        assert proc.poll() is None, lines.text()
        yield lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_terragon(
    args: list[str], env: dict[str, str], *, stderr_tty: bool = False
) -> tuple[int, str, str]:
    """`terragon ARGS` in a child process, stdout piped; stderr piped too, or a terminal (pty)."""
    import os
    import pty
    import sys

    argv = [sys.executable, "-m", "terragon_ingest.cli", *args]
    full_env = {**os.environ, "COLUMNS": "120", **env}
    full_env.pop("TERRAGON_LOG_FORMAT", None)
    if not stderr_tty:
        done = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=follower) as child:
        os.close(follower)
        stdout, _ = child.communicate(timeout=120)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
    return child.returncode, stdout.decode(), b"".join(chunks).decode(errors="replace")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, *, every: float = 0.1
) -> None:
    """Poll `predicate` every `every` seconds until it holds; fail naming `what` after `timeout`
    seconds (a condition to reach, not a sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def until(condition: Callable[[], object], what: str, seconds: float = 10.0) -> None:
    """The async `wait_until`: poll `condition` (a function, or a coroutine function) until it
    holds; fail naming `what` after `seconds` (there is no event to wait on)."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting for {what}") from None


def invoke_in_process(args: list[str]) -> Any:
    """`terragon ARGS` run in this process (click's `CliRunner`), without the `terragon` group's
    callback: that callback configures logging for the runner's throwaway streams, with loggers
    cached on first use, and every later test of the session would log there (and
    `structlog.testing.capture_logs` would see nothing)."""
    from click.testing import CliRunner

    from terragon_ingest.cli import main

    command = main.commands[args[0]]
    return CliRunner().invoke(command, args[1:])
