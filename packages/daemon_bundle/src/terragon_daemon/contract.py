"""Values of the wire contract the daemon needs, duplicated from `terragon_core`.

The daemon may not import `terragon_core` (it needs msgspec, the daemon is stdlib-only), so the
few names and numbers it speaks are repeated here. `tests/daemon_bundle/unit/test_daemon_parity.py`
compares every value with `terragon_core`; change them there first, then here.
"""

from __future__ import annotations

from typing import Final

DAEMON_EVENT_PAYLOAD_VERSION: Final = 2
"""Envelope v2: `runId`, `eventId`, `seq`, and `endSha` on the terminal batch (CONTRACT §4)."""
LEGACY_PAYLOAD_VERSION: Final = 1
ENVELOPE_CONTRACT_VERSION: Final = 2
LEGACY_THREAD_CHAT_ID: Final = "legacy-thread-chat-id"
DEFAULT_TIMEZONE: Final = "UTC"

DAEMON_EVENT_PATH: Final = "/api/daemon-event"
DAEMON_TOKEN_HEADER: Final = "X-Daemon-Token"
TRACEPARENT_HEADER: Final = "traceparent"

TERMINAL_MESSAGE_TYPES: Final = frozenset({"result", "custom-stop", "custom-error"})
CUSTOM_STOP: Final = "custom-stop"
CUSTOM_ERROR: Final = "custom-error"

ENVELOPE_FIELDS: Final = (
    "threadId",
    "messages",
    "threadChatId",
    "timezone",
    "payloadVersion",
    "runId",
    "eventId",
    "seq",
    "endSha",
)
"""Wire names of the envelope, in `terragon_core.DaemonEnvelope` field order."""

START_MESSAGE_FIELDS: Final = (
    "type",
    "runId",
    "threadId",
    "threadChatId",
    "token",
    "payloadVersion",
    "ingestUrl",
    "featureFlags",
)
"""Wire names of `terragon_core.DaemonStartMessage` (CONTRACT §3 `daemonMessage`)."""

ENVELOPE_STATUSES: Final = frozenset(
    {
        "applied",
        "duplicate",
        "stale_seq",
        "quarantined",
        "invalid",
        "unauthorized",
        "forbidden",
        "too_large",
        "rate_limited",
        "unavailable",
    }
)
"""`status` values of `POST /api/daemon-event` responses (`terragon_core.EnvelopeStatus`)."""
