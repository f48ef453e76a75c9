"""The bodies the daemon builds decode under terragon_core's strict envelope contract."""

from __future__ import annotations

from terragon_core import decode_envelope, given, is_failure, is_terminal, v2_fields_valid
from terragon_daemon.envelope import build_envelope, encode_body, synthetic_terminal
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
    )


def test_v2_batch_is_a_valid_v2_envelope() -> None:
    body = build_envelope(
        spec(), [{"type": "assistant", "uuid": "u1"}], event_id="e1", seq=1, end_sha=None
    )
    envelope = decode_envelope(encode_body(body))
    assert envelope.payload_version == 2
    assert (envelope.run_id, envelope.event_id, envelope.seq) == ("run-1", "e1", 1)
    assert v2_fields_valid(envelope)
    assert "endSha" not in body  # only the terminal batch says where the run ended


def test_v2_terminal_batch_carries_end_sha() -> None:
    messages = [{"type": "assistant"}, {"type": "result", "is_error": False}]
    body = build_envelope(spec(), messages, event_id="e9", seq=9, end_sha=SHA)
    envelope = decode_envelope(encode_body(body))
    assert is_terminal(envelope.messages)
    assert given(envelope.end_sha) == SHA


def test_v1_batch_has_no_v2_fields() -> None:
    body = build_envelope(
        spec(version=1, run_id=None), [{"type": "result"}], event_id="e1", seq=1, end_sha=SHA
    )
    assert set(body) == {"threadId", "threadChatId", "messages", "timezone", "payloadVersion"}
    envelope = decode_envelope(encode_body(body))
    assert envelope.payload_version == 1
    assert envelope.run_id is None and envelope.event_id is None and envelope.seq is None


def test_synthetic_terminals_are_terminal_and_error_is_a_failure() -> None:
    stop = synthetic_terminal("custom-stop", "stop", "agent stopped", -15)
    error = synthetic_terminal("custom-error", "agent_exited_without_result", "exit 3", 3)
    assert is_terminal([stop]) and not is_failure([stop])
    assert is_terminal([error]) and is_failure([error])
    assert stop["uuid"] != error["uuid"]


def test_body_is_compact_utf8() -> None:
    body = encode_body({"threadId": "t", "messages": [{"text": "héllo"}]})
    assert body == '{"threadId":"t","messages":[{"text":"héllo"}]}'.encode()
