"""Hypothesis over `terragon_core.decode_envelope`: every well-typed envelope round-trips, and
nothing a daemon can send makes the decoder raise anything but `EnvelopeError`."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from terragon_core import DaemonEnvelope, EnvelopeError, decode_envelope
from tests.fuzz.conftest import FUZZ

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
messages = st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=5), max_size=6)
optional_text = st.none() | st.text(max_size=40)
# An identifier holds no NUL (PostgreSQL text cannot): one that does is a 400, tested below.
identifiers = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)

envelopes = st.builds(
    DaemonEnvelope,
    thread_id=identifiers,
    messages=messages,
    thread_chat_id=identifiers,
    timezone=st.text(max_size=20),
    payload_version=st.sampled_from([1, 2]),
    run_id=st.none() | identifiers,
    event_id=optional_text,
    seq=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    end_sha=optional_text,
)


@FUZZ
@given(envelopes)
def test_every_well_typed_envelope_round_trips(envelope: DaemonEnvelope) -> None:
    assert decode_envelope(msgspec.json.encode(envelope)) == envelope


@FUZZ
@given(envelopes, st.sampled_from(["threadId", "threadChatId", "runId"]), st.text(max_size=10))
def test_an_identifier_with_a_nul_is_rejected_naming_it(
    envelope: DaemonEnvelope, field: str, around: str
) -> None:
    body = msgspec.to_builtins(envelope)
    body[field] = f"{around}\x00{around}"
    with pytest.raises(EnvelopeError, match=field):
        decode_envelope(msgspec.json.encode(body))


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_decoded_or_rejected_with_envelope_error(body: bytes) -> None:
    try:
        result = decode_envelope(body)
    except EnvelopeError:
        return
    assert isinstance(result, DaemonEnvelope)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "threadId",
                "threadChatId",
                "messages",
                "timezone",
                "payloadVersion",
                "runId",
                "eventId",
                "seq",
                "endSha",
                "extra",
            ]
        ),
        json_values,
        max_size=10,
    )
)
def test_arbitrary_json_objects_never_crash_the_decoder(body: dict[str, Any]) -> None:
    try:
        result = decode_envelope(msgspec.json.encode(body))
    except EnvelopeError:
        return
    # Whatever decoded has exactly the contract's types (strict: no coercion).
    assert isinstance(result.thread_id, str)
    assert isinstance(result.messages, list)
    assert result.payload_version in (1, 2)
    assert result.seq is None or type(result.seq) is int


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payloadVersion", True),
        ("payloadVersion", "2"),
        ("payloadVersion", 3),
        ("seq", "1"),
        ("seq", 1.5),
        ("seq", True),
        ("messages", {"type": "assistant"}),
        ("messages", ["not an object"]),
        ("threadId", 7),
    ],
)
def test_strict_types_are_rejected(field: str, value: object) -> None:
    body: dict[str, object] = {"threadId": "t1", "messages": []}
    body[field] = value
    with pytest.raises(EnvelopeError):
        decode_envelope(msgspec.json.encode(body))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"threadId":"t1","messages":[],"seq":NaN}',
        b'{"threadId":"t1","messages":[],"seq":Infinity}',
        b'{"threadId":"\xff\xfe","messages":[]}',
        b'{"threadId":"t1","messages":[' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"threadId":"t1","messages":[{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
        b"",
        b"null",
        b"[]",
    ],
    ids=[
        "nan",
        "infinity",
        "invalid-utf8",
        "deep-nesting",
        "very-deep-nesting",
        "empty",
        "null",
        "array",
    ],
)
def test_hostile_bodies_are_envelope_errors(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(raw)


def test_duplicate_keys_take_one_value_without_crashing() -> None:
    envelope = decode_envelope(b'{"threadId":"a","threadId":"b","messages":[]}')
    assert envelope.thread_id in {"a", "b"}
