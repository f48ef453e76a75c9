"""The `POST /api/daemon-event` body (CONTRACT §4), built once when a batch is sealed.

v2 carries `runId`, `eventId`, `seq` and, on the terminal batch, `endSha`. v1 (legacy) carries
only `threadId`, `threadChatId`, `messages`, `timezone` and `payloadVersion: 1`. The body is
stored in the spool as built, so every retry sends the same bytes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from terragon_daemon.contract import (
    CUSTOM_ERROR,
    CUSTOM_STOP,
    DAEMON_EVENT_PAYLOAD_VERSION,
    TERMINAL_MESSAGE_TYPES,
)
from terragon_daemon.protocol import StartSpec

Message = dict[str, Any]


def is_terminal_message(message: Message) -> bool:
    """`result`, `custom-stop` and `custom-error` end a run."""
    return message.get("type") in TERMINAL_MESSAGE_TYPES


def is_terminal(messages: list[Message]) -> bool:
    return any(is_terminal_message(m) for m in messages)


def build_envelope(
    spec: StartSpec,
    messages: list[Message],
    *,
    event_id: str,
    seq: int,
    end_sha: str | None,
) -> dict[str, Any]:
    """The body for one sealed batch; `event_id` and `seq` are used only in v2."""
    body: dict[str, Any] = {
        "threadId": spec.thread_id,
        "threadChatId": spec.thread_chat_id,
        "messages": messages,
        "timezone": spec.timezone,
        "payloadVersion": spec.payload_version,
    }
    if spec.payload_version == DAEMON_EVENT_PAYLOAD_VERSION:
        body["runId"] = spec.run_id
        body["eventId"] = event_id
        body["seq"] = seq
        if is_terminal(messages):
            body["endSha"] = end_sha
    return body


def encode_body(envelope: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the bytes that go on the wire."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def message_size(message: Message) -> int:
    """A message's share of a batch, in bytes of compact JSON."""
    return len(encode_body(message))


def synthetic_terminal(kind: str, reason: str, detail: str, exit_code: int | None) -> Message:
    """The `custom-stop` / `custom-error` the daemon sends when the agent printed no `result`."""
    if kind not in (CUSTOM_STOP, CUSTOM_ERROR):
        raise ValueError(f"not a synthetic terminal type: {kind!r}")
    return {
        "type": kind,
        "uuid": str(uuid.uuid4()),
        "reason": reason,
        "error": detail,
        "exitCode": exit_code,
        "source": "terragon-daemon",
    }


def agent_ending(stop_reason: str | None, exit_code: int | None, *, failed: bool) -> Message:
    """The terminal for an agent whose output ended without one of its own."""
    if stop_reason is not None:
        detail = f"agent stopped ({stop_reason})"
        return synthetic_terminal(CUSTOM_STOP, stop_reason, detail, exit_code)
    if failed:
        detail = "the daemon failed reading the agent's output"
        return synthetic_terminal(CUSTOM_ERROR, "daemon_error", detail, exit_code)
    detail = f"agent exited with code {exit_code} without a result message"
    return synthetic_terminal(CUSTOM_ERROR, "agent_exited_without_result", detail, exit_code)
