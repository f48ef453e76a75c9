"""One run: the agent's stdout → batches sealed into the spool → the deliverer.

Two threads per run. The pump reads the agent (`agent.AgentProcess`), feeds the batcher and
seals batches on count, bytes or interval; a `result` line seals at once, as the terminal batch,
with `endSha` read from `git rev-parse HEAD` (v2). When the agent's output ends without a
terminal message, the pump seals a `custom-stop` (after `stop`/`kill`) or `custom-error`
itself, so every run ends with exactly one terminal batch. The deliverer sends batches in `seq`
order (`delivery.Deliverer`).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Final

from terragon_daemon.agent import AgentProcess, read_head_sha
from terragon_daemon.batcher import Batcher
from terragon_daemon.contract import CUSTOM_ERROR, DAEMON_EVENT_PAYLOAD_VERSION
from terragon_daemon.delivery import Deliverer
from terragon_daemon.envelope import (
    Message,
    agent_ending,
    decode_message,
    encode_json,
    is_terminal_message,
    synthetic_terminal,
)
from terragon_daemon.logs import log_event
from terragon_daemon.sender import Backoff, HttpSender
from terragon_daemon.settings import DaemonSettings
from terragon_daemon.spool import SpoolRun

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.25
"""Longest the pump blocks on a quiet agent before it re-checks exit and flush deadlines."""


class RunSession:
    """An agent and the delivery of its output, for one run."""

    def __init__(self, run: SpoolRun, settings: DaemonSettings, sender: HttpSender) -> None:
        self.run = run
        self.key = run.key
        self.spec = run.spec
        self._settings = settings
        self._cond = threading.Condition()
        self._batcher = Batcher(
            max_messages=settings.max_batch_messages,
            max_bytes=settings.max_batch_bytes,
            interval=settings.flush_interval,
        )
        backoff = Backoff(settings.retry_base_delay, settings.retry_max_delay)
        self.deliverer = Deliverer(run, self._cond, sender, backoff, settings.max_attempts)
        self._agent: AgentProcess | None = None
        self._stop_reason: str | None = None
        self._kill_timer: threading.Timer | None = None
        self._threads: list[threading.Thread] = []
        self.agent_done = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start_agent(self) -> None:
        """Spawn the agent in the repo dir and start pumping and delivering."""
        env = dict(os.environ)
        env["TERRAGON_THREAD_ID"] = self.spec.thread_id
        env["TERRAGON_THREAD_CHAT_ID"] = self.spec.thread_chat_id
        env["TERRAGON_RUN_ID"] = self.spec.run_id or ""
        try:
            self._agent = AgentProcess(self.spec.agent_command, self.spec.repo_dir, env)
        except OSError as exc:
            log_event(log, logging.ERROR, "agent_spawn_failed", run_key=self.key, error=str(exc))
            with self._cond:
                self._finish(synthetic_terminal(CUSTOM_ERROR, "agent_spawn_failed", str(exc), None))
                self.agent_done.set()
                self.deliverer.producer_finished()
            self._spawn(self.deliverer.loop, "deliver")
            raise
        log_event(
            log,
            logging.INFO,
            "agent_started",
            run_key=self.key,
            pid=self._agent.pid,
            payload_version=self.spec.payload_version,
            repo_dir=self.spec.repo_dir,
        )
        self._spawn(self._pump, "pump")
        self._spawn(self.deliverer.loop, "deliver")

    def resume(self) -> None:
        """Deliver what a previous daemon process spooled; its agent is gone for good."""
        with self._cond:
            if not self.run.terminal_sealed:
                detail = "the daemon restarted before the agent finished"
                self._finish(synthetic_terminal(CUSTOM_ERROR, "daemon_restarted", detail, None))
            self.agent_done.set()
            self.deliverer.producer_finished()
        log_event(log, logging.INFO, "run_resumed", run_key=self.key, pending=len(self.run.pending))
        self._spawn(self.deliverer.loop, "deliver")

    def _spawn(self, target: Any, role: str) -> None:
        thread = threading.Thread(target=target, name=f"run-{role}-{self.key}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, *, kill: bool, reason: str) -> bool:
        """SIGTERM (then SIGKILL after the grace period) or SIGKILL the agent."""
        with self._cond:
            agent = self._agent
            if agent is None or self.agent_done.is_set():
                return False
            self._stop_reason = self._stop_reason or reason
        log_event(
            log, logging.INFO, "agent_stop_requested", run_key=self.key, kill=kill, reason=reason
        )
        if kill:
            agent.kill()
        else:
            agent.terminate()
            timer = threading.Timer(self._settings.stop_grace, self._kill_if_alive)
            timer.daemon = True
            self._kill_timer = timer
            timer.start()
        return True

    def _kill_if_alive(self) -> None:
        agent = self._agent
        if agent is not None and not self.agent_done.is_set() and agent.returncode is None:
            log_event(log, logging.WARNING, "agent_kill_after_grace", run_key=self.key)
            agent.kill()

    def wait_complete(self, timeout: float | None = None) -> bool:
        return self.deliverer.complete.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "runKey": self.key,
                "runId": self.spec.run_id,
                "threadId": self.spec.thread_id,
                "threadChatId": self.spec.thread_chat_id,
                "payloadVersion": self.spec.payload_version,
                "agentRunning": self._agent is not None and not self.agent_done.is_set(),
                "lastSealedSeq": self.run.last_sealed_seq,
                "pending": len(self.run.pending),
                "delivered": self.run.delivered,
                "deadLettered": self.run.dead_lettered,
                "complete": self.deliverer.complete.is_set(),
            }

    # ------------------------------------------------------------------ the pump
    def _pump(self) -> None:
        agent = self._agent
        assert agent is not None
        exit_code: int | None = None
        failed = False
        try:
            while True:
                with self._cond:
                    due = self._batcher.seconds_until_due()
                out = agent.read(POLL_SECONDS if due is None else min(POLL_SECONDS, due))
                for line in out.stderr:
                    text = line.decode("utf-8", "replace")[:500]
                    log_event(log, logging.INFO, "agent_stderr", run_key=self.key, line=text)
                with self._cond:
                    for line in out.stdout:
                        self._accept(line)
                    due = self._batcher.seconds_until_due()
                    if due is not None and due <= 0:
                        self._seal(self._batcher.take())
                if out.ended:
                    break
            exit_code = agent.wait()
            agent.close()
        except Exception:
            log.exception("run_pump_failed run_key=%s", self.key)
            failed = True
            agent.kill()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        with self._cond:
            log_event(log, logging.INFO, "agent_exited", run_key=self.key, exit_code=exit_code)
            try:
                if not self.run.terminal_sealed:
                    self._finish(agent_ending(self._stop_reason, exit_code, failed=failed))
            except Exception:
                log.exception("terminal_seal_failed run_key=%s", self.key)
            self.agent_done.set()
            self.deliverer.producer_finished()

    def _accept(self, line: bytes) -> None:
        raw = line.strip()
        try:
            message = decode_message(raw)
        except ValueError as exc:
            log_event(
                log, logging.WARNING, "agent_line_rejected", run_key=self.key, error=str(exc)[:200]
            )
            return
        if self.run.terminal_sealed:
            kind = message.get("type")
            log_event(
                log, logging.WARNING, "agent_output_after_terminal", run_key=self.key, type=kind
            )
            return
        self._add(raw, terminal=is_terminal_message(message))

    def _add(self, raw: bytes, *, terminal: bool) -> None:
        """Batch one message; a terminal one seals everything pending, itself last."""
        batches = self._batcher.add(raw)
        if terminal and len(self._batcher):
            batches.append(self._batcher.take())
        for index, batch in enumerate(batches):
            self._seal(batch, terminal=terminal and index == len(batches) - 1)

    def _finish(self, terminal: Message) -> None:
        """Seal what is left plus a terminal message of the daemon's own."""
        self._add(encode_json(terminal), terminal=True)
        fields = {"type": terminal["type"], "reason": terminal["reason"]}
        log_event(log, logging.WARNING, "synthetic_terminal_sealed", run_key=self.key, **fields)

    def _seal(self, messages: list[bytes], *, terminal: bool = False) -> None:
        if not messages:
            return
        end_sha: str | None = None
        if terminal and self.spec.payload_version == DAEMON_EVENT_PAYLOAD_VERSION:
            end_sha = read_head_sha(self.spec.repo_dir)
            if end_sha is None:
                log_event(log, logging.WARNING, "end_sha_unavailable", run_key=self.key)
        batch = self.run.seal(messages, terminal=terminal, end_sha=end_sha)
        log_event(
            log,
            logging.INFO,
            "batch_sealed",
            run_key=self.key,
            seq=batch.seq,
            event_id=batch.event_id,
            messages=len(messages),
            bytes=len(batch.body),
            terminal=terminal,
            end_sha=end_sha,
        )
        self._cond.notify_all()
