"""Platform → daemon messages (CONTRACT §3): the start message handed to `sendDaemonMessage`."""

from __future__ import annotations

from typing import Literal

import msgspec

from terragon_core.constants import DAEMON_EVENT_PAYLOAD_VERSION
from terragon_core.flags import FrozenFlags


class DaemonStartMessage(msgspec.Struct, rename="camel", kw_only=True):
    """`{type: "start", runId, threadId, threadChatId, token, payloadVersion: 2, ingestUrl,
    featureFlags}`: everything a daemon needs to stream envelope v2 for one run."""

    type: Literal["start"] = "start"
    run_id: str
    thread_id: str
    thread_chat_id: str
    token: str
    payload_version: int = DAEMON_EVENT_PAYLOAD_VERSION
    ingest_url: str
    feature_flags: FrozenFlags
