"""Control messages: start validation, v1/v2 selection, selectors, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from terragon_daemon.protocol import (
    ProtocolError,
    choose_payload_version,
    decode_line,
    parse_selector,
    parse_start,
)


def start(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "start",
        "runId": "run-1",
        "threadId": "thread-1",
        "threadChatId": "chat-1",
        "token": "tok",
        "payloadVersion": 2,
        "ingestUrl": "http://127.0.0.1:9",
        "featureFlags": {"sandboxPreview": True, "daemonRunIdStrict": True},
        "agentCommand": ["python3", "agent.py"],
        "repoDir": "/repo",
    }
    message.update(overrides)
    return message


def test_full_start_message() -> None:
    spec = parse_start(
        start(timezone="Europe/Paris", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    )
    assert spec.run_id == "run-1"
    assert spec.payload_version == 2
    assert spec.agent_command == ("python3", "agent.py")
    assert spec.repo_dir == "/repo"
    assert spec.timezone == "Europe/Paris"
    assert spec.feature_flags["daemonRunIdStrict"] is True


def test_defaults_fill_platform_extras() -> None:
    spec = parse_start(
        start(agentCommand=None, repoDir=None, threadChatId=None),
        default_agent_command=("claude", "-p"),
        default_repo_dir="/default",
    )
    assert spec.agent_command == ("claude", "-p")
    assert spec.repo_dir == "/default"
    assert spec.thread_chat_id == "legacy-thread-chat-id"
    assert spec.timezone == "UTC"


@pytest.mark.parametrize("run_id", [None, ""])
def test_start_without_run_id_is_legacy_v1(run_id: str | None) -> None:
    spec = parse_start(start(runId=run_id))
    assert spec.run_id is None
    assert spec.payload_version == 1


def test_forced_v1_wins_over_run_id() -> None:
    assert parse_start(start(), forced_payload_version=1).payload_version == 1


@pytest.mark.parametrize(
    ("run_id", "requested", "forced", "expected"),
    [
        ("r", None, None, 2),
        ("r", 2, None, 2),
        ("r", 1, None, 1),
        ("r", 1, 2, 2),
        (None, 2, 2, 1),
        ("r", 2, 1, 1),
    ],
)
def test_choose_payload_version(
    run_id: str | None, requested: int | None, forced: int | None, expected: int
) -> None:
    assert choose_payload_version(run_id, requested, forced) == expected


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"threadId": ""}, "threadId"),
        ({"token": None}, "token"),
        ({"ingestUrl": "ftp://x"}, "ingestUrl"),
        ({"threadId": 7}, "threadId"),
        ({"agentCommand": "python3 agent.py"}, "agentCommand"),
        ({"agentCommand": []}, "agentCommand"),
        ({"featureFlags": [1]}, "featureFlags"),
        ({"payloadVersion": 3}, "payloadVersion"),
        ({"payloadVersion": True}, "payloadVersion"),
    ],
)
def test_invalid_start_messages(overrides: dict[str, Any], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        parse_start(start(**overrides))


@pytest.mark.parametrize(
    ("line", "error"),
    [(b"not json", "not JSON"), (b"[1]", "object"), (b'{"type": "launch"}', "unknown")],
)
def test_decode_line_rejects(line: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        decode_line(line)


def test_decode_line_and_selector() -> None:
    message = decode_line(b'{"type": "stop", "threadId": "t", "threadChatId": "c"}\n')
    selector = parse_selector(message)
    assert (selector.run_id, selector.thread_id, selector.thread_chat_id) == (None, "t", "c")
