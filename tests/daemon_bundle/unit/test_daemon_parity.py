"""The daemon's duplicated contract values equal terragon_core's (the one source)."""

from __future__ import annotations

import msgspec

import terragon_core
from terragon_core import DaemonEnvelope, DaemonStartMessage, EnvelopeStatus, FrozenFlags
from terragon_daemon import contract
from terragon_daemon.protocol import parse_start


def test_payload_versions_and_thread_chat_default() -> None:
    assert contract.DAEMON_EVENT_PAYLOAD_VERSION == terragon_core.DAEMON_EVENT_PAYLOAD_VERSION
    assert contract.LEGACY_PAYLOAD_VERSION == terragon_core.LEGACY_PAYLOAD_VERSION
    assert contract.ENVELOPE_CONTRACT_VERSION == terragon_core.ENVELOPE_CONTRACT_VERSION
    assert contract.LEGACY_THREAD_CHAT_ID == terragon_core.LEGACY_THREAD_CHAT_ID
    assert DaemonEnvelope(thread_id="t", messages=[]).timezone == contract.DEFAULT_TIMEZONE


def test_headers_and_terminal_types() -> None:
    assert contract.DAEMON_TOKEN_HEADER == terragon_core.DAEMON_TOKEN_HEADER
    assert contract.TRACEPARENT_HEADER == terragon_core.TRACEPARENT_HEADER
    assert contract.TERMINAL_MESSAGE_TYPES == terragon_core.TERMINAL_MESSAGE_TYPES
    assert {contract.CUSTOM_STOP, contract.CUSTOM_ERROR} <= terragon_core.TERMINAL_MESSAGE_TYPES


def test_response_statuses() -> None:
    assert {status.value for status in EnvelopeStatus} == contract.ENVELOPE_STATUSES


def test_envelope_field_names() -> None:
    names = tuple(f.encode_name for f in msgspec.structs.fields(DaemonEnvelope))
    assert names == contract.ENVELOPE_FIELDS


def test_start_message_field_names() -> None:
    names = tuple(f.encode_name for f in msgspec.structs.fields(DaemonStartMessage))
    assert names == contract.START_MESSAGE_FIELDS


def test_core_start_message_is_accepted_by_the_daemon() -> None:
    message = DaemonStartMessage(
        run_id="run-9",
        thread_id="thread-9",
        thread_chat_id="chat-9",
        token="tok",
        ingest_url="http://127.0.0.1:1",
        feature_flags=FrozenFlags(sandbox_preview=True, daemon_run_id_strict=False),
    )
    spec = parse_start(msgspec.to_builtins(message), default_agent_command=("agent",))
    assert (spec.run_id, spec.thread_id, spec.thread_chat_id) == ("run-9", "thread-9", "chat-9")
    assert spec.payload_version == terragon_core.DAEMON_EVENT_PAYLOAD_VERSION
    assert spec.feature_flags == {
        "sandboxPreview": True,
        "daemonRunIdStrict": False,
        "rolloutPhase": None,
    }
