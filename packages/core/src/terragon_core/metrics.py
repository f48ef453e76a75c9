"""Metric names: logical `preview.*` names and their Prometheus spelling (CONTRACT §1, §6).

A logical name `preview.x` is exposed as the counter `preview_x_total`. Dimensions are always
`repo`, `user`, `provider` (plus `reason` where one applies).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class MetricName(StrEnum):
    STRICT_MISMATCH = "preview.strict_mismatch"
    LEGACY_MODE = "preview.legacy_mode"
    MISSING_END_SHA = "preview.missing_end_sha"
    QUARANTINE = "preview.quarantine"
    """Every quarantine row written, any reason."""
    ENVELOPE = "preview.envelope"
    """Every daemon-event response, by `status` (dimension `reason` carries it)."""
    QUARANTINE_OFFLOAD = "preview.quarantine_offload"
    QUARANTINE_OFFLOAD_SKIPPED = "preview.quarantine_offload_skipped"
    ACCESS_DENIED = "preview.access_denied"
    CACHE_INVALIDATION = "preview.cache_invalidation"
    RUN_FINALIZED = "preview.run_finalized"
    QUARANTINE_PURGE = "preview.quarantine_purge"
    EVENT_PURGE = "preview.event_purge"
    """Preview-event rows purged by retention (no reason: `reason` is "")."""
    BUDGET_SYNC_FAILURE = "preview.budget_sync_failure"
    """Run-budget syncs to Valkey that failed (each worker's own accounting decided meanwhile)."""
    EDGE_REJECTED = "preview.edge_rejected"
    """Connections and requests the HTTP edge refused, by `EdgeRejection` (`reason`)."""
    RUN_START_DELIVERY_FAILED = "preview.run_start_delivery_failed"
    """Run starts whose start message the sandbox's daemon did not take (502), by
    `DeliveryFailure` (`reason`)."""


ENVELOPE_SECONDS_HISTOGRAM: Final = "preview_envelope_seconds"
"""Daemon-event handling time (histogram, no labels)."""
INGEST_BATCH_HISTOGRAM: Final = "preview_ingest_batch_envelopes"
"""Envelopes per ingest statement under group commit (histogram, no labels; tools/bench reads it)."""

METRIC_LABELS: Final = ("repo", "user", "provider", "reason")
"""Label set of every `preview_*` counter. `reason` is "" where none applies."""

ANONYMOUS_USER: Final = "anonymous"
"""`user` of a preview denial whose request carried no valid credential (CONTRACT §3): never the
session's user, so a stranger's requests cannot raise a tenant's numbers; alert rules leave it out."""

QUARANTINE_PURGE_EVENT: Final = "preview.quarantine.purge"
"""Event emitted before a day of quarantine rows is dropped (CONTRACT §4 retention)."""

EVENT_PURGE_EVENT: Final = "preview.event.purge"
"""Event emitted before a day of preview events is dropped (the same rule as quarantine rows)."""


def prometheus_name(metric: MetricName) -> str:
    """`preview.strict_mismatch` → `preview_strict_mismatch` (the exposition adds `_total`)."""
    return metric.value.replace(".", "_")


QUARANTINE_RECORDED_EVENT: Final = "preview.quarantine.recorded"
"""Event emitted with every quarantine row (properties: reason, quarantineId, eventId, seq)."""

RUN_FINALIZED_EVENT: Final = "preview.run.finalized"
"""Event emitted when the maintenance backstop finalizes a run (missing_end_sha_timeout)."""
