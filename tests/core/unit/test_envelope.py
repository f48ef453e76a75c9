"""Stateless envelope rules (CONTRACT §4): strict decoding, 'not given', terminal and failure."""

from __future__ import annotations

import msgspec
import pytest

from terragon_core import (
    DaemonEnvelope,
    EnvelopeError,
    decode_envelope,
    envelope_json_schema,
    given,
    is_failure,
    is_terminal,
    over_limit,
    scan_envelope,
    v2_fields_valid,
)


def _body(**fields: object) -> bytes:
    base: dict[str, object] = {"threadId": "t1", "messages": []}
    base.update(fields)
    return msgspec.json.encode(base)


def test_v1_defaults() -> None:
    env = decode_envelope(_body())
    assert env.thread_chat_id == "legacy-thread-chat-id"
    assert env.timezone == "UTC"
    assert env.payload_version == 1
    assert env.run_id is None


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"[]",
        _body(messages="x"),
        _body(messages=["x"]),
        _body(payloadVersion=3),
        _body(payloadVersion="2"),
        _body(seq="1"),
        _body(seq=1.5),
        _body(seq=True),
        _body(runId=5),
        b'{"messages": []}',
    ],
)
def test_wrong_types_are_rejected_strictly(bad: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(bad)


def test_absent_null_and_empty_are_all_not_given() -> None:
    assert given(None) is None
    assert given("") is None
    assert given("r1") == "r1"
    env = decode_envelope(_body(runId="", endSha=None))
    assert given(env.run_id) is None
    assert given(env.end_sha) is None


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({"eventId": "e1", "seq": 1}, True),
        ({"eventId": "e1", "seq": 0}, False),
        ({"eventId": "e1", "seq": -3}, False),
        ({"eventId": "", "seq": 2}, False),
        ({"seq": 2}, False),
        ({"eventId": "e1"}, False),
    ],
)
def test_v2_field_rules(fields: dict[str, object], valid: bool) -> None:
    env = decode_envelope(_body(payloadVersion=2, runId="r1", **fields))
    assert v2_fields_valid(env) is valid


def test_terminal_and_failure_detection() -> None:
    ordinary = [{"type": "assistant"}, {"type": "user"}]
    assert not is_terminal(ordinary)
    assert is_terminal([*ordinary, {"type": "result", "is_error": False}])
    assert not is_failure([{"type": "result", "is_error": False}])
    assert is_failure([{"type": "result", "is_error": True}])
    assert is_terminal([{"type": "custom-stop"}])
    assert not is_failure([{"type": "custom-stop"}])
    assert is_failure([{"type": "assistant"}, {"type": "custom-error"}])


_MESSAGES: list[list[dict[str, object]]] = [
    [],
    [{"type": "assistant", "uuid": "u1"}],
    [{"type": "result", "is_error": True}],
    [{"type": "result", "is_error": 1}, {"type": "custom-stop"}],
    [{"type": "assistant"}, {"type": "custom-error", "uuid": "x" * 129}],
    [{"type": "result", "uuid": "a\x00b"}],
    [{"uuid": "x" * 128}, {"uuid": 7}, {"type": 3}, {"is_error": True}],
]
_FIELDS: list[dict[str, object]] = [
    {},
    {"eventId": "e" * 129},
    {"endSha": "s\x00"},
    {"eventId": "e" * 128, "endSha": "s" * 128, "seq": 2**63 - 1},
    {"seq": 2**63},
    {"seq": -(2**63) - 1},
    {"seq": 0},
]


@pytest.mark.parametrize("messages", _MESSAGES)
@pytest.mark.parametrize("fields", _FIELDS)
def test_scan_is_over_limit_terminal_and_failure(
    messages: list[dict[str, object]], fields: dict[str, object]
) -> None:
    env = decode_envelope(_body(messages=messages, **fields))
    scan = scan_envelope(env)
    assert scan.fits == (over_limit(env) is None)
    assert scan.terminal == is_terminal(env.messages)
    assert scan.failure == is_failure(env.messages)


def test_schema_names_camel_case_fields() -> None:
    schema = envelope_json_schema()
    props = schema["$defs"]["DaemonEnvelope"]["properties"]
    assert {
        "threadId",
        "threadChatId",
        "payloadVersion",
        "runId",
        "eventId",
        "seq",
        "endSha",
    } <= set(props)
    assert isinstance(DaemonEnvelope(thread_id="t", messages=[]), DaemonEnvelope)


def test_hostile_bodies_are_envelope_errors_not_crashes() -> None:
    with pytest.raises(EnvelopeError, match="UTF-8"):
        decode_envelope(b'{"threadId": "\xff\xfe", "messages": []}')
    deep = b'{"threadId":"t","messages":[{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    with pytest.raises(EnvelopeError, match="nests too deeply"):
        decode_envelope(deep)
