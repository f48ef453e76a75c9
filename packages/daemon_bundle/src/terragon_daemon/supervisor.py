"""The daemon's runs: start, stop, resume after a restart, shut down cleanly.

`Daemon.handle` answers one control message (see `protocol`); the socket server and the CLI's
one-shot mode both go through it. Everything a run needs on disk lives in the spool, so a new
process resumes delivery where the old one stopped, without re-sealing.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from terragon_daemon import __version__
from terragon_daemon.logs import log_event
from terragon_daemon.protocol import (
    ProtocolError,
    Selector,
    StartSpec,
    parse_selector,
    parse_start,
)
from terragon_daemon.run import RunSession
from terragon_daemon.sender import HttpSender, new_trace_id, trace_id_from
from terragon_daemon.settings import DaemonSettings
from terragon_daemon.spool import Spool, run_key

log = logging.getLogger(__name__)


class Daemon:
    """All runs of one daemon process, over one spool directory."""

    def __init__(self, settings: DaemonSettings, sender: HttpSender | None = None) -> None:
        self.settings = settings
        self.spool = Spool(Path(settings.spool_dir))
        self.spool.lock()
        self._sender = sender or HttpSender(settings.http_timeout)
        self._lock = threading.Lock()
        self._sessions: dict[str, RunSession] = {}
        self._closing = False

    # ------------------------------------------------------------------ control messages
    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer one decoded control message; never raises for bad input."""
        try:
            kind = message.get("type")
            if kind == "start":
                return self.start(message)
            if kind in ("stop", "kill"):
                return self.stop(parse_selector(message), kill=kind == "kill")
            if kind == "ping":
                return self.ping()
            raise ProtocolError(f"unknown control message type {kind!r}")
        except (ProtocolError, OSError) as exc:
            log_event(log, logging.WARNING, "control_message_rejected", error=str(exc))
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control_message_failed type=%s", message.get("type"))
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    def start(self, message: dict[str, Any]) -> dict[str, Any]:
        spec = parse_start(
            message,
            forced_payload_version=self.settings.payload_version,
            default_agent_command=self.settings.agent_command,
            default_repo_dir=self.settings.repo_dir,
        )
        if not spec.agent_command:
            raise ProtocolError("no 'agentCommand' in the start message and no --agent-command")
        key = run_key(spec)
        with self._lock:
            if self._closing:
                raise ProtocolError("the daemon is shutting down")
            if key in self._sessions or self.spool.exists(key):
                log_event(log, logging.INFO, "start_duplicate_ignored", run_key=key)
                return {"ok": True, "runKey": key, "duplicate": True}
            session = self._create(key, spec)
            session.start_agent()
        log_event(
            log,
            logging.INFO,
            "run_started",
            run_key=key,
            run_id=spec.run_id,
            thread_id=spec.thread_id,
            thread_chat_id=spec.thread_chat_id,
            payload_version=spec.payload_version,
        )
        return {"ok": True, "runKey": key, "payloadVersion": spec.payload_version}

    def _create(self, key: str, spec: StartSpec) -> RunSession:
        trace_id = trace_id_from(spec.traceparent) or new_trace_id()
        session = RunSession(
            self.spool.create_run(key, spec, trace_id), self.settings, self._sender
        )
        self._sessions[key] = session
        return session

    def stop(self, selector: Selector, *, kill: bool, reason: str | None = None) -> dict[str, Any]:
        stopped = [
            session.key
            for session in self._select(selector)
            if session.stop(kill=kill, reason=reason or ("kill" if kill else "stop"))
        ]
        return {"ok": True, "stopped": stopped}

    def _select(self, selector: Selector) -> list[RunSession]:
        with self._lock:
            sessions = list(self._sessions.values())
        return [
            s
            for s in sessions
            if (selector.run_id is None or s.spec.run_id == selector.run_id)
            and (selector.thread_id is None or s.spec.thread_id == selector.thread_id)
            and (
                selector.thread_chat_id is None or s.spec.thread_chat_id == selector.thread_chat_id
            )
        ]

    def ping(self) -> dict[str, Any]:
        with self._lock:
            runs = [s.status() for s in self._sessions.values()]
        return {"ok": True, "type": "pong", "version": __version__, "runs": runs}

    # ------------------------------------------------------------------ lifecycle
    def resume(self) -> list[str]:
        """Pick up every unfinished run in the spool (after a crash or restart)."""
        keys: list[str] = []
        for spool_run in self.spool.load_unfinished():
            with self._lock:
                if spool_run.key in self._sessions:
                    continue
                session = RunSession(spool_run, self.settings, self._sender)
                self._sessions[spool_run.key] = session
            session.resume()
            keys.append(spool_run.key)
        return keys

    def idle(self) -> bool:
        """True when every run has delivered (or dead-lettered) everything."""
        with self._lock:
            return all(s.deliverer.complete.is_set() for s in self._sessions.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not session.wait_complete(left):
                return False
        return True

    def dead_lettered(self) -> int:
        with self._lock:
            return sum(s.run.dead_lettered for s in self._sessions.values())

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop agents, seal their terminal batches, deliver until `timeout`, then leave the
        rest in the spool. Returns True when nothing was left behind."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            sessions = list(self._sessions.values())
        log_event(log, logging.INFO, "daemon_shutdown_started", runs=len(sessions))
        for session in sessions:
            session.stop(kill=False, reason="daemon_shutdown")
        drained = self.wait_idle(max(0.0, deadline - time.monotonic()))
        for session in sessions:
            session.deliverer.abort()
            session.stop(kill=True, reason="daemon_shutdown")
        for session in sessions:
            session.join(max(0.1, deadline + 1.0 - time.monotonic()))
        self.spool.unlock()
        pending = sum(len(s.run.pending) for s in sessions)
        log_event(log, logging.INFO, "daemon_shutdown_finished", drained=drained, spooled=pending)
        return drained
