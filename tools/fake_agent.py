"""A fake coding agent that talks like Claude's `--output-format stream-json`.

It prints one JSON object per line: a `system` init, then assistant/user turns (text, an `Edit`
tool call and its result), then a `result`. Every line carries a unique `uuid`. On its tool
calls it really edits a file in the current directory and `git commit`s it, so the daemon's
`endSha` and the server's diff have something to look at. Standard library only: the daemon
runs it as `python3 tools/fake_agent.py ...` inside a checkout.

    python3 tools/fake_agent.py --messages 6 --commits 1 --seed 7
    python3 tools/fake_agent.py --omit-result --exit-code 3      # daemon sends custom-error
    python3 tools/fake_agent.py --error-result                   # result with is_error: true
    python3 tools/fake_agent.py --hang                           # wait for stop/kill
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

MODEL = "fake-agent-1"
GIT_IDENTITY = ("-c", "user.name=Fake Agent", "-c", "user.email=fake-agent@terragon.invalid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake_agent",
        description="Emit Claude-like stream-json lines, edit and commit a file, end with result.",
    )
    parser.add_argument(
        "--messages", type=int, default=6, help="assistant/user lines (%(default)s)"
    )
    parser.add_argument("--rate", type=float, default=0.0, help="lines per second, 0 = no delay")
    parser.add_argument("--payload-bytes", type=int, default=64, help="assistant text size")
    parser.add_argument("--commits", type=int, default=1, help="edit+commit cycles (%(default)s)")
    parser.add_argument("--file", default="FAKE_AGENT_NOTES.md", help="file the agent edits")
    parser.add_argument("--no-git", action="store_true", help="edit the file but do not commit")
    parser.add_argument("--omit-result", action="store_true", help="exit without a result line")
    parser.add_argument("--error-result", action="store_true", help="result with is_error: true")
    parser.add_argument("--exit-code", type=int, default=0, help="process exit status")
    parser.add_argument("--hang", action="store_true", help="after the turns, wait for a signal")
    parser.add_argument("--seed", type=int, help="deterministic uuids and text")
    return parser


class FakeAgent:
    """Produces the lines; `rng` drives every id and word so `--seed` makes runs repeatable."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed) if args.seed is not None else random.SystemRandom()
        self.session_id = self.uuid()
        self.edits = 0
        self.started = time.monotonic()

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def text(self, size: int) -> str:
        words = ("refactor", "test", "module", "fix", "commit", "diff", "agent", "run", "seq")
        out: list[str] = []
        while len(" ".join(out)) < size:
            out.append(self.rng.choice(words))
        return " ".join(out)[: max(size, 1)]

    def emit(self, message: dict[str, Any]) -> None:
        line = {"type": message.pop("type"), "uuid": self.uuid(), "session_id": self.session_id}
        sys.stdout.write(json.dumps({**line, **message}) + "\n")
        sys.stdout.flush()
        if self.args.rate > 0:
            time.sleep(1.0 / self.args.rate)

    def edit_and_commit(self) -> str:
        self.edits += 1
        path = Path.cwd() / self.args.file
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"- edit {self.edits}: {self.text(24)}\n")
        if not self.args.no_git:
            git = ("git", *GIT_IDENTITY, "-c", "commit.gpgsign=false")
            subprocess.run([*git, "add", "--", self.args.file], check=True)
            message = f"fake agent: edit {self.edits}"
            subprocess.run([*git, "commit", "-q", "-m", message], check=True)
        return str(path.name)

    def assistant(self, content: list[dict[str, Any]]) -> None:
        self.emit(
            {
                "type": "assistant",
                "parent_tool_use_id": None,
                "message": {
                    "id": f"msg_{self.rng.getrandbits(64):016x}",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": content,
                    "stop_reason": None,
                    "usage": {"input_tokens": 10, "output_tokens": len(content) * 10},
                },
            }
        )

    def user(self, tool_use_id: str | None) -> None:
        content: list[dict[str, Any]] = (
            [{"type": "tool_result", "tool_use_id": tool_use_id, "content": "ok"}]
            if tool_use_id
            else [{"type": "text", "text": self.text(16)}]
        )
        self.emit(
            {
                "type": "user",
                "parent_tool_use_id": None,
                "message": {"role": "user", "content": content},
            }
        )

    def turns(self) -> None:
        tool_use_id: str | None = None
        for index in range(self.args.messages):
            if index % 2 == 1:
                self.user(tool_use_id)
                tool_use_id = None
            elif self.edits < self.args.commits:
                name = self.edit_and_commit()
                tool_use_id = f"toolu_{self.rng.getrandbits(64):016x}"
                call = {"file_path": name, "old_string": "", "new_string": f"edit {self.edits}"}
                self.assistant(
                    [{"type": "tool_use", "id": tool_use_id, "name": "Edit", "input": call}]
                )
            else:
                self.assistant([{"type": "text", "text": self.text(self.args.payload_bytes)}])
        while self.edits < self.args.commits:  # fewer turns than commits: commit silently
            self.edit_and_commit()

    def result(self) -> None:
        error = self.args.error_result
        self.emit(
            {
                "type": "result",
                "subtype": "error_during_execution" if error else "success",
                "is_error": error,
                "duration_ms": int((time.monotonic() - self.started) * 1000),
                "num_turns": self.args.messages,
                "result": "fake agent failed" if error else f"done: {self.edits} edit(s)",
                "total_cost_usd": 0.0,
            }
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    agent = FakeAgent(args)
    agent.emit(
        {
            "type": "system",
            "subtype": "init",
            "cwd": str(Path.cwd()),
            "model": MODEL,
            "tools": ["Edit"],
        }
    )
    agent.turns()
    if args.hang:
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
        stopped.wait()
        return 143
    if not args.omit_result:
        agent.result()
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
