"""Wire shapes of the run endpoints (CONTRACT §3). camelCase on the wire."""

from __future__ import annotations

from datetime import datetime

import msgspec

from terragon_core import DaemonStartMessage, FrozenFlags, SandboxProvider, TriggerSource
from terragon_ingest.kit.openapi import Text, WireId


class ThreadCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    thread_id: WireId
    user_id: Text
    repo_full_name: Text
    sandbox_provider: SandboxProvider
    codesandbox_id: Text
    repo_dir: Text | None = None


class Thread(msgspec.Struct, rename="camel"):
    thread_id: str
    user_id: str
    repo_full_name: str
    sandbox_provider: SandboxProvider
    codesandbox_id: str
    repo_dir: str | None = None


class RunStartCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    thread_id: WireId
    thread_chat_id: WireId
    start_request_id: Text
    trigger_source: TriggerSource


class Run(msgspec.Struct, rename="camel"):
    """`GET /api/internal/runs/{runId}`."""

    run_id: str
    thread_id: str
    thread_chat_id: str
    status: str
    daemon_payload_version: int | None
    last_accepted_seq: int | None
    run_start_sha: str | None
    run_end_sha: str | None
    diff_source: str | None
    diff_source_context: str | None
    terminal_event_id: str | None
    frozen_flags: FrozenFlags
    accepted_event_count: int
    accepted_message_count: int
    started_at: datetime
    ended_at: datetime | None
    codesandbox_id: str | None = None
    sandbox_provider: str | None = None
    trigger_source: str | None = None
    finish_reason: str | None = None


class FlagUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`PUT /api/internal/flags/{name}`: no repo/user → the global value."""

    enabled: bool
    repo_full_name: Text | None = None
    user_id: Text | None = None


class FlagUpdated(msgspec.Struct, rename="camel"):
    name: str
    scope: str
    scope_key: str
    enabled: bool


class RunStarted(msgspec.Struct, rename="camel"):
    """`POST /api/internal/runs/start` → `{runId, status, frozenFlags, runStartSha, daemonMessage, delivered}`."""

    run_id: str
    status: str
    frozen_flags: FrozenFlags
    run_start_sha: str | None
    daemon_message: DaemonStartMessage
    delivered: bool


class ThreadClosed(msgspec.Struct, rename="camel"):
    """`POST /api/internal/threads/{threadId}/close` and `terragon tokens revoke --thread`."""

    thread_id: str
    ended_run_id: str | None
    """The run this close ended as `failed` (`finishReason: thread_closed`); null when the thread
    had no live run (closing twice). A thread with several chats ends each chat's live run: this
    is the latest started of them."""
    revoked_tokens: int
    """Daemon tokens of the thread this close revoked (every one of its runs'); 0 the second time."""
