"""Every closed set of values on the wire (CONTRACT §1). The one definition of each.

Values are exact: daemons, alert rules and analysts' queries depend on them.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    BOOTING = "booting"
    RUNNING = "running"
    VALIDATING = "validating"
    FINISHED = "finished"
    FAILED = "failed"


ACTIVE_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.BOOTING, RunStatus.RUNNING, RunStatus.VALIDATING}
)


class TriggerSource(StrEnum):
    UI = "ui"
    RETRY = "retry"
    FOLLOW_UP_QUEUE = "follow_up_queue"
    SCHEDULED = "scheduled"
    SLASH_COMMAND = "slash_command"
    SYSTEM = "system"


class SandboxProvider(StrEnum):
    DAYTONA = "daytona"
    E2B = "e2b"
    DOCKER = "docker"
    LOCAL = "local"
    MANUAL = "manual"


class QuarantineReason(StrEnum):
    MISSING_RUN_ID = "missing_run_id"
    MISMATCH = "mismatch"
    LEGACY_MODE = "legacy_mode"
    PAYLOAD_VERSION_MISMATCH = "payload_version_mismatch"
    MISSING_END_SHA = "missing_end_sha"
    INVALID_ENVELOPE = "invalid_envelope"


class SecurityReason(StrEnum):
    EXPIRED = "expired"
    REVOKED = "revoked"
    SIGNATURE_MISMATCH = "signature_mismatch"
    BINDING_MISMATCH = "binding_mismatch"
    PERMISSION_DENIED = "permission_denied"
    TOKEN_REPLAY = "token_replay"
    RATE_LIMITED = "rate_limited"
    CACHE_UNAVAILABLE = "cache_unavailable"
    PROXY_SSRF_BLOCKED = "proxy_ssrf_blocked"
    PROXY_PATH_DENIED = "proxy_path_denied"


class EdgeRejection(StrEnum):
    """Why the HTTP edge refused a connection or request before the app saw it (CONTRACT §3 "Edge
    limits"): the `reason` of the `preview.edge_rejected` metric and the `code` of the answer."""

    HEADER_TIMEOUT = "header_timeout"
    BODY_TIMEOUT = "body_timeout"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    DUPLICATE_HOST = "duplicate_host"
    TOO_LARGE = "too_large"
    """A body over its route's cap (the GitHub webhook's `TERRAGON_WEBHOOK_MAX_BODY_BYTES`)."""


class DeliveryFailure(StrEnum):
    """Why a sandbox's daemon did not take a run's start message: the `reason` of the 502 from
    `POST /api/internal/runs/start` (the run is minted; the same `startRequestId` retries the
    delivery) and of the `preview.run_start_delivery_failed` metric. Every sandbox provider's
    delivery answers with one of these."""

    DAEMON_UNREACHABLE = "daemon_unreachable"
    """Nothing took the connection (no daemon listening, the sandbox not running)."""
    DAEMON_TIMEOUT = "daemon_timeout"
    """No answer within `TERRAGON_DELIVERY_TIMEOUT`."""
    DAEMON_REFUSED = "daemon_refused"
    """The daemon answered, but not `ok` (or not a reply it can send)."""


class UiValidationOutcome(StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    BLOCKED = "blocked"


class DiffSource(StrEnum):
    SHA = "sha"
    WORKING_TREE_FALLBACK = "working-tree-fallback"


class PreviewEventName(StrEnum):
    SESSION_STATE_CHANGED = "v1.preview.session.state_changed"
    VALIDATION_ATTEMPT_STARTED = "v1.preview.validation.attempt_started"
    VALIDATION_ATTEMPT_FINISHED = "v1.preview.validation.attempt_finished"
    ACCESS_DENIED = "v1.preview.access.denied"


class EventOrigin(StrEnum):
    DAEMON_EVENT = "daemon_event"
    PREVIEW_PROXY = "preview_proxy"
    PREVIEW_EXCHANGE = "preview_exchange"
    PREVIEW_SUBSCRIPTION = "preview_subscription"
    PREVIEW_SESSION_START = "preview_session_start"
    PREVIEW_MAINTENANCE = "preview_maintenance"
    RUN_START = "run_start"


class InvalidationReason(StrEnum):
    TEAM_MEMBERSHIP_CHANGED = "team_membership_changed"
    REPO_VISIBILITY_CHANGED = "repo_visibility_changed"
    COLLABORATOR_CHANGED = "collaborator_changed"
    READY_ACTION = "ready_action"
    THREAD_VISIBILITY_CHANGED = "thread_visibility_changed"
    SESSION_REMINT = "session_remint"
    SESSION_REVOKED = "session_revoked"
    ACTIVE_RUN_REBOUND = "active_run_rebound"


class EnvelopeStatus(StrEnum):
    """`status` in every `POST /api/daemon-event` response body (CONTRACT §4 table)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE_SEQ = "stale_seq"
    QUARANTINED = "quarantined"
    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    """429 with `Retry-After`: the run is over its per-minute budget (CONTRACT §4 "Budgets")."""
    UNAVAILABLE = "unavailable"


class CorrelationOutcome(StrEnum):
    """What the one correlation decision (SQL `terragon_ingest_envelopes`) answers for an envelope.

    Each is an envelope status, a quarantine reason, or `needs_inputs` (the service gathers the
    sandbox reads / legacy_mode row and asks again). A test checks the SQL answers exactly these.
    """

    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    MISSING_RUN_ID = "missing_run_id"
    MISMATCH = "mismatch"
    INVALID_ENVELOPE = "invalid_envelope"
    PAYLOAD_VERSION_MISMATCH = "payload_version_mismatch"
    DUPLICATE = "duplicate"
    STALE_SEQ = "stale_seq"
    MISSING_END_SHA = "missing_end_sha"
    NEEDS_INPUTS = "needs_inputs"
    APPLIED = "applied"


class FeatureFlagName(StrEnum):
    """Flags frozen into every run at creation (CONTRACT §2)."""

    SANDBOX_PREVIEW = "sandboxPreview"
    DAEMON_RUN_ID_STRICT = "daemonRunIdStrict"


class FinishReason(StrEnum):
    """Why a run reached a terminal status; stored in `diffSourceContext` / run rows."""

    COMPLETED = "completed"
    AGENT_ERROR = "agent_error"
    SUPERSEDED = "superseded"
    MISSING_END_SHA_TIMEOUT = "missing_end_sha_timeout"
    THREAD_CLOSED = "thread_closed"
    """`POST /api/internal/threads/{threadId}/close` (or `terragon tokens revoke`) ended it."""
