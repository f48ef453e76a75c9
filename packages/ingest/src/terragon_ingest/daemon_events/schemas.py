"""Wire shapes of the daemon-event and quarantine endpoints (CONTRACT §3, §4). camelCase."""

from __future__ import annotations

from datetime import datetime

import msgspec

from terragon_core import EnvelopeStatus, QuarantineReason, SecurityReason


class EnvelopeAck(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every `POST /api/daemon-event` response body: `status` always, the rest when it applies."""

    status: EnvelopeStatus
    reason: QuarantineReason | None = None
    """Why the envelope was quarantined (`status: quarantined`)."""
    legacy_mode: bool = False
    """True when a legacy envelope was applied under strict=false (a `legacy_mode` row was kept)."""
    errors: list[str] | None = None
    """Decoder errors (`status: invalid`)."""
    code: SecurityReason | None = None
    """With `unauthorized`: `expired` (an hour after the token's run ended) or `revoked` (its
    thread was closed); absent for a missing or unknown token."""
    error: str | None = None
    """A human-readable explanation for 401/403/413/503 (never database or internal text)."""
    trace_id: str | None = None
    """On a 503: the request's trace id; the service's log has the cause under it."""
    run_id: str | None = None
    last_accepted_seq: int | None = None
    applied_messages: int | None = None
    quarantine_id: str | None = None


class QuarantineRow(msgspec.Struct, rename="camel"):
    """`GET /api/internal/quarantine` row (CONTRACT §3)."""

    id: str
    thread_id: str
    thread_chat_id: str
    run_id_or_null: str | None
    active_run_id: str | None
    reason: QuarantineReason
    payload_version: int | None
    payload_hash: str
    payload_size: int
    payload_prefix_2k: str = msgspec.field(name="payloadPrefix2k")
    payload_object_key: str | None
    repo_full_name: str | None
    user_id: str | None
    sandbox_provider: str | None
    created_at: datetime


class QuarantineDetail(QuarantineRow, rename="camel"):
    """One row with everything the CLI's `show` prints (not part of the list contract)."""

    event_id: str | None = None
    seq: int | None = None
    trace_id: str | None = None
    offload_skipped: bool = False
    payload_inline: bool = False
    replayed_at: datetime | None = None
    replay_status: str | None = None
    token_run_id: str | None = None
    """The run the sending token was minted for (null on rows older than that column)."""
    strict: bool | None = None
    """The frozen daemonRunIdStrict the envelope was decided under (null on older rows)."""


class UiValidation(msgspec.Struct, rename="camel"):
    """`GET /api/internal/ui-validation/{threadId}/{threadChatId}`."""

    latest_run_id: str
    ui_validation_outcome: str
    blocking_reason: str | None


class SweepResult(msgspec.Struct, rename="camel"):
    """`POST /api/internal/maintenance/sweep` and `terragon maintenance sweep`."""

    swept: bool
    """False when another replica holds the sweep lock (nothing done here)."""
    finalized_runs: int = 0
    finalized_run_ids: list[str] = msgspec.field(default_factory=list)
    purged_quarantine_rows: int = 0
    """Always 0, on purpose: CONTRACT §3 lists the field, but quarantine rows are purged by
    retention (`archive/retention.py`, its own daily job and `terragon retention purge`), which
    first proves the archive holds the day; the sweep never deletes rows. Retention's count is
    `preview_quarantine_purge_total` and its `preview.quarantine.purge` event."""
    orphan_objects_removed: int = 0
