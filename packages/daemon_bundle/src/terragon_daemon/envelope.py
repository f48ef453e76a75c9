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
"""A decoded agent message (used to look at its `type`)."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_message(line: bytes) -> Message:
    """One agent stdout line (UTF-8) → its JSON object; ValueError if it is not strict JSON or
    not an object (NaN / Infinity are refused: the server's decoder is strict)."""
    message = _DECODER.decode(line.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError(f"a message must be a JSON object, got {type(message).__name__}")
    return message


def is_terminal_message(message: Message) -> bool:
    """`result`, `custom-stop` and `custom-error` end a run."""
    kind = message.get("type")  # the agent's JSON: a list or an object is not hashable
    return isinstance(kind, str) and kind in TERMINAL_MESSAGE_TYPES


def encode_json(data: object) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_envelope(
    spec: StartSpec,
    messages: list[bytes],
    *,
    event_id: str,
    seq: int,
    terminal: bool,
    end_sha: str | None,
) -> bytes:
    """The request body of one sealed batch. `messages` are the agent's lines as read (each
    already checked by `decode_message`), spliced in verbatim; `event_id` / `seq` / `end_sha`
    are used only in v2, `end_sha` only on the terminal batch."""
    head = {"threadId": spec.thread_id, "threadChatId": spec.thread_chat_id}
    tail: dict[str, Any] = {"timezone": spec.timezone, "payloadVersion": spec.payload_version}
    if spec.payload_version == DAEMON_EVENT_PAYLOAD_VERSION:
        tail |= {"runId": spec.run_id, "eventId": event_id, "seq": seq}
        if terminal:
            tail["endSha"] = end_sha
    return b"".join(
        (
            encode_json(head)[:-1],
            b',"messages":[',
            b",".join(messages),
            b"],",
            encode_json(tail)[1:],
        )
    )


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
