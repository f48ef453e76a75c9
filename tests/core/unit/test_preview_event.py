"""The locked observability schema (CONTRACT §6): required fields, unknown fields rejected."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from terragon_core import EventOrigin, PreviewEvent, decode_preview_event, encode_preview_event


def _event(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "schemaVersion": 1,
        "eventName": "v1.preview.access.denied",
        "origin": "preview_proxy",
        "tsServer": "2026-11-26T10:00:00Z",
        "traceId": "a" * 32,
        "threadId": "t1",
        "threadChatId": "c1",
        "runId": "r1",
        "codesandboxId": "sb1",
        "sandboxProvider": "local",
        "properties": {"reason": "expired"},
    }
    body.update(overrides)
    return body


def test_valid_event_round_trips() -> None:
    event = decode_preview_event(msgspec.json.encode(_event(proxyReqId="p1")))
    assert event.origin is EventOrigin.PREVIEW_PROXY
    assert event.proxy_req_id == "p1"
    again = decode_preview_event(encode_preview_event(event))
    assert again == event


@pytest.mark.parametrize(
    "mutation",
    [
        {"unexpected": 1},
        {"schemaVersion": 2},
        {"eventName": "v2.something"},
        {"origin": "somewhere"},
        {"traceId": ""},
        {"tsServer": "2026-11-26T10:00:00"},
        {"sandboxProvider": "vm"},
    ],
)
def test_invalid_events_are_rejected(mutation: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_preview_event(msgspec.json.encode(_event(**mutation)))


@pytest.mark.parametrize(
    "missing", ["traceId", "origin", "tsServer", "threadId", "runId", "codesandboxId"]
)
def test_required_fields(missing: str) -> None:
    body = _event()
    del body[missing]
    with pytest.raises(msgspec.ValidationError):
        decode_preview_event(msgspec.json.encode(body))


def test_operational_preview_events_are_allowed() -> None:
    event = decode_preview_event(msgspec.json.encode(_event(eventName="preview.quarantine.purge")))
    assert event.event_name == "preview.quarantine.purge"
    assert isinstance(PreviewEvent, type)
    assert event.ts_server == datetime(2026, 11, 26, 10, tzinfo=UTC)
