"""Control messages the platform sends the daemon, one JSON object per line on the Unix socket.

- `start`: CONTRACT §3 `daemonMessage` (`runId`, `threadId`, `threadChatId`, `token`,
  `payloadVersion`, `ingestUrl`, `featureFlags`) plus platform-side extras: `agentCommand` (argv
  list), `repoDir`, `timezone` and `traceparent`, all optional.
- `stop` / `kill`: end a run's agent (SIGTERM with a grace period / SIGKILL at once). Optional
  selectors `runId` or `threadId` + `threadChatId`; without one they apply to every active run.
- `ping`: liveness and a summary of the runs.

Every request gets one JSON line back: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from terragon_daemon.contract import (
    DAEMON_EVENT_PAYLOAD_VERSION,
    DEFAULT_TIMEZONE,
    LEGACY_PAYLOAD_VERSION,
    LEGACY_THREAD_CHAT_ID,
)

CONTROL_TYPES = ("start", "stop", "kill", "ping")


class ProtocolError(ValueError):
    """A control message is not JSON, has an unknown `type` or a field of the wrong type."""


@dataclass(frozen=True)
class StartSpec:
    """Everything one run needs, after validation. `run_id` is None for a legacy v1 run."""

    thread_id: str
    thread_chat_id: str
    token: str
    ingest_url: str
    payload_version: int
    run_id: str | None = None
    agent_command: tuple[str, ...] = ()
    repo_dir: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    traceparent: str | None = None
    feature_flags: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The spec as stored in the spool (the token included: the spool is private, 0600)."""
        return {
            "threadId": self.thread_id,
            "threadChatId": self.thread_chat_id,
            "token": self.token,
            "ingestUrl": self.ingest_url,
            "payloadVersion": self.payload_version,
            "runId": self.run_id,
            "agentCommand": list(self.agent_command),
            "repoDir": self.repo_dir,
            "timezone": self.timezone,
            "traceparent": self.traceparent,
            "featureFlags": self.feature_flags,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StartSpec:
        return cls(
            thread_id=data["threadId"],
            thread_chat_id=data["threadChatId"],
            token=data["token"],
            ingest_url=data["ingestUrl"],
            payload_version=int(data["payloadVersion"]),
            run_id=data.get("runId") or None,
            agent_command=tuple(data.get("agentCommand") or ()),
            repo_dir=data.get("repoDir"),
            timezone=data.get("timezone") or DEFAULT_TIMEZONE,
            traceparent=data.get("traceparent"),
            feature_flags=dict(data.get("featureFlags") or {}),
        )


def decode_line(line: bytes | str) -> dict[str, Any]:
    """One socket line → a JSON object with a known `type`."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"control message is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("control message must be a JSON object")
    kind = data.get("type")
    if kind not in CONTROL_TYPES:
        raise ProtocolError(f"unknown control message type {kind!r}")
    return data


def _text(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise ProtocolError(f"start message needs a non-empty {key!r}")
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def choose_payload_version(run_id: str | None, requested: object, forced: int | None) -> int:
    """v2 needs a `runId`; without one, or when forced to 1, the run speaks legacy v1."""
    if forced == LEGACY_PAYLOAD_VERSION or run_id is None:
        return LEGACY_PAYLOAD_VERSION
    if forced == DAEMON_EVENT_PAYLOAD_VERSION or requested is None:
        return DAEMON_EVENT_PAYLOAD_VERSION
    if not isinstance(requested, bool) and requested == LEGACY_PAYLOAD_VERSION:
        return LEGACY_PAYLOAD_VERSION
    if not isinstance(requested, bool) and requested == DAEMON_EVENT_PAYLOAD_VERSION:
        return DAEMON_EVENT_PAYLOAD_VERSION
    raise ProtocolError(f"'payloadVersion' must be 1 or 2, got {requested!r}")


def parse_start(
    data: dict[str, Any],
    *,
    forced_payload_version: int | None = None,
    default_agent_command: tuple[str, ...] = (),
    default_repo_dir: str | None = None,
) -> StartSpec:
    """Validate a `start` message; daemon-side defaults fill the platform extras."""
    ingest_url = _text(data, "ingestUrl", required=True) or ""
    if urlsplit(ingest_url).scheme not in ("http", "https"):
        raise ProtocolError(f"'ingestUrl' must be an http(s) URL, got {ingest_url!r}")
    run_id = _text(data, "runId")
    command = data.get("agentCommand")
    if command is None:
        agent_command = default_agent_command
    elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        agent_command = tuple(command)
    else:
        raise ProtocolError("'agentCommand' must be a non-empty list of strings")
    flags = data.get("featureFlags") or {}
    if not isinstance(flags, dict):
        raise ProtocolError("'featureFlags' must be an object")
    return StartSpec(
        thread_id=_text(data, "threadId", required=True) or "",
        thread_chat_id=_text(data, "threadChatId") or LEGACY_THREAD_CHAT_ID,
        token=_text(data, "token", required=True) or "",
        ingest_url=ingest_url,
        payload_version=choose_payload_version(
            run_id, data.get("payloadVersion"), forced_payload_version
        ),
        run_id=run_id,
        agent_command=agent_command,
        repo_dir=_text(data, "repoDir") or default_repo_dir,
        timezone=_text(data, "timezone") or DEFAULT_TIMEZONE,
        traceparent=_text(data, "traceparent"),
        feature_flags=dict(flags),
    )


@dataclass(frozen=True)
class Selector:
    """Which runs a `stop` / `kill` applies to; empty means all active runs."""

    run_id: str | None = None
    thread_id: str | None = None
    thread_chat_id: str | None = None


def parse_selector(data: dict[str, Any]) -> Selector:
    return Selector(
        run_id=_text(data, "runId"),
        thread_id=_text(data, "threadId"),
        thread_chat_id=_text(data, "threadChatId"),
    )
