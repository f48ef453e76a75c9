"""Helpers for the daemon and bundle tests: a real HTTP ingest stand-in, git checkouts, start
messages, and a daemon subprocess whose structured logs can be waited on."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_AGENT = REPO_ROOT / "tools" / "fake_agent.py"
DAEMON_SRC = REPO_ROOT / "packages" / "daemon_bundle" / "src"
WAIT = 15.0
"""Upper bound of every wait: generous, because a hung test fails loudly rather than slowly."""


@dataclass(frozen=True)
class Received:
    """One request the fake ingest got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def seq(self) -> int | None:
        return self.json.get("seq")

    @property
    def event_id(self) -> str | None:
        return self.json.get("eventId")

    @property
    def message_types(self) -> list[str]:
        return [m.get("type") for m in self.json["messages"]]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | None = field(default_factory=lambda: {"status": "applied"})
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without answering (a network error for the client)."""


APPLIED = Reply()
DROP = Reply(drop=True)


class FakeIngest:
    """A tiny real `http.server` on 127.0.0.1 that records requests and answers as scripted."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Reply] = []
        self.responder: Callable[[Received], Reply] = lambda _request: APPLIED
        self._cond = threading.Condition()
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = ingest._record(request)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = json.dumps(reply.body).encode() if reply.body is not None else b""
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _record(self, request: Received) -> Reply:
        with self._cond:
            self.received.append(request)
            reply = self.script.pop(0) if self.script else self.responder(request)
            self._cond.notify_all()
        return reply

    def respond(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order, then with the responder."""
        with self._cond:
            self.script.extend(replies)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = WAIT
    ) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.received), timeout):
                raise AssertionError(f"ingest condition not met in {timeout}s: {self.received}")
            return list(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        with self._cond:
            return [r.json for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


def make_git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@terragon.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    (path / "README.md").write_text("checkout\n")
    subprocess.run([*git, "add", "README.md"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=path, check=True)
    return path


def head_sha(repo: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def agent_command(*args: str, python: str = sys.executable) -> list[str]:
    """`python -S tools/fake_agent.py ...` (-S: the fake agent is stdlib-only; starts faster)."""
    return [python, "-S", str(FAKE_AGENT), *args]


def start_message(
    ingest_url: str, repo: Path, agent_args: Sequence[str] = (), **overrides: Any
) -> dict[str, Any]:
    """A CONTRACT §3 daemonMessage plus the platform extras (`agentCommand`, `repoDir`)."""
    message: dict[str, Any] = {
        "type": "start",
        "runId": "run-1",
        "threadId": "thread-1",
        "threadChatId": "chat-1",
        "token": "daemon-token-1",
        "payloadVersion": 2,
        "ingestUrl": ingest_url,
        "featureFlags": {"sandboxPreview": True, "daemonRunIdStrict": True, "rolloutPhase": None},
        "agentCommand": agent_command(*agent_args),
        "repoDir": str(repo),
    }
    message.update(overrides)
    return {k: v for k, v in message.items() if v is not ...}


FAST_FLAGS = (
    "--flush-interval", "0.05",
    "--retry-base-delay", "0.01",
    "--retry-max-delay", "0.05",
    "--stop-grace", "2",
    "--log-level", "info",
)  # fmt: skip


class DaemonProcess:
    """`python -m terragon_daemon ...` (or a .pyz) with its stderr log lines queued for waits."""

    def __init__(
        self, args: Sequence[str], *, pyz: Path | None = None, python: str = sys.executable
    ):
        # -S: no site-packages, so the daemon process proves it needs nothing but the stdlib.
        entry = [python, "-S", str(pyz)] if pyz else [python, "-S", "-m", "terragon_daemon"]
        env = dict(os.environ)
        if pyz is None:
            env["PYTHONPATH"] = str(DAEMON_SRC)
        self.proc = subprocess.Popen(
            [*entry, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_log(self, pattern: str, timeout: float = WAIT) -> str:
        """Block until a log line matches `pattern` (regex); fail if the process ends first."""
        regex = re.compile(pattern)
        for line in self.lines:
            if regex.search(line):
                return line
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no log line matching {pattern!r} in {timeout}s") from None
            if line is None:
                raise AssertionError(f"daemon exited before logging {pattern!r}:\n" + self.log())
            self.lines.append(line)
            if regex.search(line):
                return line

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    def log(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def python310() -> str | None:
    """A working Python 3.10 interpreter, if this machine has one (env TERRAGON_TEST_PYTHON310)."""
    import shutil

    candidates = [os.environ.get("TERRAGON_TEST_PYTHON310"), shutil.which("python3.10")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob("versions/3.10*/bin/python3.10"))]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            done = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
        except OSError:
            continue
        if done.stdout.strip() == "True":
            return candidate
    return None
