"""Every enum value and constant of CONTRACT §1, spelled out: a rename here breaks other programs."""

from __future__ import annotations

import hashlib

import pytest

import terragon_core as core
from terragon_core import (
    DiffSource,
    EventOrigin,
    InvalidationReason,
    PreviewEventName,
    QuarantineReason,
    RunStatus,
    SandboxProvider,
    SecurityReason,
    TriggerSource,
    UiValidationOutcome,
)

EXPECTED = {
    RunStatus: ["booting", "running", "validating", "finished", "failed"],
    TriggerSource: ["ui", "retry", "follow_up_queue", "scheduled", "slash_command", "system"],
    SandboxProvider: ["daytona", "e2b", "docker", "local", "manual"],
    QuarantineReason: [
        "missing_run_id",
        "mismatch",
        "legacy_mode",
        "payload_version_mismatch",
        "missing_end_sha",
        "invalid_envelope",
    ],
    SecurityReason: [
        "expired",
        "revoked",
        "signature_mismatch",
        "binding_mismatch",
        "permission_denied",
        "token_replay",
        "rate_limited",
        "cache_unavailable",
        "proxy_ssrf_blocked",
        "proxy_path_denied",
    ],
    UiValidationOutcome: ["not_required", "pending", "passed", "failed", "inconclusive", "blocked"],
    DiffSource: ["sha", "working-tree-fallback"],
    PreviewEventName: [
        "v1.preview.session.state_changed",
        "v1.preview.validation.attempt_started",
        "v1.preview.validation.attempt_finished",
        "v1.preview.access.denied",
    ],
    EventOrigin: [
        "daemon_event",
        "preview_proxy",
        "preview_exchange",
        "preview_subscription",
        "preview_session_start",
        "preview_maintenance",
        "run_start",
    ],
    InvalidationReason: [
        "team_membership_changed",
        "repo_visibility_changed",
        "collaborator_changed",
        "ready_action",
        "thread_visibility_changed",
        "session_remint",
        "session_revoked",
        "active_run_rebound",
    ],
}


@pytest.mark.parametrize("enum", list(EXPECTED), ids=lambda e: e.__name__)
def test_enum_values_are_exactly_the_contract(enum: type) -> None:
    assert [m.value for m in enum] == EXPECTED[enum]  # type: ignore[attr-defined]


def test_constants() -> None:
    assert core.PREVIEW_SESSION_TTL_SECONDS == 1800
    assert core.DAEMON_EVENT_PAYLOAD_VERSION == 2
    assert core.LEGACY_THREAD_CHAT_ID == "legacy-thread-chat-id"
    assert core.SCHEMA_VERSION == 1
    assert core.QUARANTINE_PREFIX_BYTES == 2048
    assert core.QUARANTINE_INLINE_LIMIT_BYTES == 16 * 1024
    assert core.QUARANTINE_OFFLOADS_PER_REPO_PER_MINUTE == 20
    assert core.QUARANTINE_RETENTION_DAYS == 30


def test_ui_rules_limits_are_the_contract() -> None:
    """CONTRACT §4: at most 100 globs of at most 256 characters, 256 alternatives per glob."""
    assert core.UI_RULES_MAX_GLOBS == 100
    assert core.UI_RULES_MAX_GLOB_LENGTH == 256
    assert core.UI_RULES_MAX_ALTERNATIVES == 256
    assert core.UI_MATCH_MAX_PATHS >= 10_000
    assert 0 < core.UI_MATCH_DEADLINE_SECONDS < 5  # a terminal envelope is answered within 5 s
    limits = {
        "UI_RULES_MAX_GLOBS",
        "UI_RULES_MAX_GLOB_LENGTH",
        "UI_RULES_MAX_ALTERNATIVES",
        "UI_MATCH_MAX_PATHS",
        "UI_MATCH_DEADLINE_SECONDS",
    }
    assert limits <= set(core.__all__)


def test_security_reason_status_table_covers_every_reason() -> None:
    expected = {
        "token_replay": 409,
        "rate_limited": 429,
        "cache_unavailable": 503,
        "proxy_ssrf_blocked": 403,
        "proxy_path_denied": 403,
        "binding_mismatch": 403,
        "expired": 401,
        "revoked": 401,
        "signature_mismatch": 401,
        "permission_denied": 403,
    }
    assert {r.value: core.http_status_for(r) for r in SecurityReason} == expected


def test_metric_names_are_preview_namespaced_with_the_contract_dimensions() -> None:
    for metric in core.MetricName:
        assert metric.value.startswith("preview.")
        assert core.prometheus_name(metric) == metric.value.replace(".", "_")
    assert core.METRIC_LABELS == ("repo", "user", "provider", "reason")
    assert {"preview.strict_mismatch", "preview.legacy_mode", "preview.missing_end_sha"} <= {
        m.value for m in core.MetricName
    }


def test_repo_access_key_and_ttls() -> None:
    key = core.repo_access_key("prod", "user-7", "acme/web")
    assert key == "terragon:v1:preview:repo-access:prod:user-7:acme/web"
    assert core.repo_access_positive_ttl_seconds() == 60
    assert core.repo_access_positive_ttl_seconds(30) == 30
    assert core.repo_access_ttl_seconds(True) == 60
    assert core.repo_access_ttl_seconds(False) == 5


def test_quarantine_object_key() -> None:
    from datetime import date

    key = core.quarantine_object_key("thread-1", date(2026, 11, 26), "abc")
    thread_key = hashlib.sha256(b"thread-1").hexdigest()[:32]
    assert key == f"preview/daemon-quarantine/{thread_key}/2026-11-26/abc.json"
    # any character in a threadId: the key holds only hex digits there
    hostile = "a/../b%2F\u00e9\x01"
    assert core.quarantine_thread_key(hostile) == hashlib.sha256(hostile.encode()).hexdigest()[:32]


def test_alias_helpers_round_trip_and_reject_empty() -> None:
    sid = core.to_sandbox_instance_id("sb-1")
    assert core.to_codesandbox_id(sid) == "sb-1"
    with pytest.raises(ValueError, match="codesandboxId"):
        core.to_sandbox_instance_id("")
    with pytest.raises(ValueError, match="sandboxInstanceId"):
        core.to_codesandbox_id("")


def test_public_surface_is_pinned() -> None:
    """Adding to core is fine; this test makes removing or renaming a public name deliberate."""
    for name in core.__all__:
        assert hasattr(core, name), name
    assert len(core.__all__) == len(set(core.__all__))
    must_exist = {
        "DaemonEnvelope",
        "DaemonStartMessage",
        "FrozenFlags",
        "PreviewEvent",
        "decode_envelope",
        "repo_access_key",
        "http_status_for",
        "to_codesandbox_id",
        "to_sandbox_instance_id",
    }
    assert must_exist <= set(core.__all__)
