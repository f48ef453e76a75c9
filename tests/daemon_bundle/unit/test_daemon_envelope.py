"""The bodies the daemon builds decode under terragon_core's strict envelope contract."""

from __future__ import annotations

import json

import pytest

from terragon_core import decode_envelope, given, is_failure, is_terminal, v2_fields_valid
from terragon_daemon.envelope import (
    agent_ending,
    decode_message,
    encode_envelope,
    encode_json,
    is_terminal_message,
    synthetic_terminal,
)
from terragon_daemon.protocol import StartSpec

SHA = "a" * 40


def spec(version: int = 2, run_id: str | None = "run-1") -> StartSpec:
    return StartSpec(
        thread_id="thread-1",
        thread_chat_id="chat-1",
        token="tok",
        ingest_url="http://x",
        payload_version=version,
        run_id=run_id,
        timezone="Europe/Paris",
    )


def test_v2_batch_is_a_valid_v2_envelope_with_messages_verbatim() -> None:
    lines = [b'{"type": "assistant", "uuid": "u1"}', '{"type":"user","text":"h\u00e9"}'.encode()]
    body = encode_envelope(spec(), lines, event_id="e1", seq=1, terminal=False, end_sha=None)
    envelope = decode_envelope(body)
    assert envelope.payload_version == 2
    assert (envelope.run_id, envelope.event_id, envelope.seq) == ("run-1", "e1", 1)
    assert (envelope.thread_id, envelope.thread_chat_id) == ("thread-1", "chat-1")
    assert envelope.timezone == "Europe/Paris"
    assert v2_fields_valid(envelope)
    assert envelope.messages[1]["text"] == "h\u00e9"
    assert lines[0] in body  # the agent's bytes, not a re-serialisation
    assert "endSha" not in json.loads(body)  # only the terminal batch says where the run ended
    assert list(json.loads(body)) == [
        "threadId", "threadChatId", "messages", "timezone", "payloadVersion", "runId", "eventId", "seq",
    ]  # fmt: skip


def test_v2_terminal_batch_carries_end_sha() -> None:
    lines = [b'{"type":"assistant"}', b'{"type":"result","is_error":false}']
    body = encode_envelope(spec(), lines, event_id="e9", seq=9, terminal=True, end_sha=SHA)
    envelope = decode_envelope(body)
    assert is_terminal(envelope.messages)
    assert given(envelope.end_sha) == SHA
    unreadable = encode_envelope(spec(), lines, event_id="e9", seq=9, terminal=True, end_sha=None)
    assert json.loads(unreadable)["endSha"] is None  # the server quarantines: missing_end_sha


def test_v1_batch_has_no_v2_fields() -> None:
    body = encode_envelope(
        spec(version=1, run_id=None), [b'{"type":"result"}'], event_id="e1", seq=1, terminal=True,
        end_sha=SHA,
    )  # fmt: skip
    assert set(json.loads(body)) == {
        "threadId", "threadChatId", "messages", "timezone", "payloadVersion",
    }  # fmt: skip
    envelope = decode_envelope(body)
    assert envelope.payload_version == 1
    assert envelope.run_id is None and envelope.event_id is None and envelope.seq is None


@pytest.mark.parametrize(
    "line", [b"not json", b"[1, 2]", b'"text"', b'{"x": NaN}', b'{"x": Infinity}', b"\xff\xfe"]
)
def test_decode_message_accepts_only_strict_json_objects(line: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json, unicode and our own errors
        decode_message(line)


def test_synthetic_terminals() -> None:
    stop = agent_ending("stop", -15, failed=False)
    error = agent_ending(None, 3, failed=False)
    broken = agent_ending(None, None, failed=True)
    assert (stop["type"], stop["reason"]) == ("custom-stop", "stop")
    assert (error["type"], error["reason"], error["exitCode"]) == (
        "custom-error", "agent_exited_without_result", 3,
    )  # fmt: skip
    assert (broken["type"], broken["reason"]) == ("custom-error", "daemon_error")
    assert is_terminal([stop]) and not is_failure([stop])
    assert is_terminal([error]) and is_failure([error])
    assert len({stop["uuid"], error["uuid"], broken["uuid"]}) == 3
    with pytest.raises(ValueError, match="synthetic"):
        synthetic_terminal("result", "x", "y", 0)


def test_encode_json_is_compact_utf8() -> None:
    assert encode_json({"t": "h\u00e9", "n": [1]}) == '{"t":"h\u00e9","n":[1]}'.encode()


@pytest.mark.parametrize("kind", [["result"], {"result": 1}, 3, None])
def test_a_message_type_that_is_not_a_string_is_not_terminal(kind: object) -> None:
    """The agent's JSON may put anything in `type`: an unhashable one must not crash the run."""
    assert is_terminal_message({"type": kind}) is False
    assert is_terminal_message({"type": "result"}) is True
