"""Prometheus counters for every `terragon_core.MetricName`, one registry per app.

A logical name `preview.x` is exposed as `preview_x_total` with labels `repo`, `user`, `provider`,
`reason` (CONTRACT §6). A registry per app (not the global one) keeps tests independent.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from terragon_core import (
    ENVELOPE_SECONDS_HISTOGRAM,
    INGEST_BATCH_HISTOGRAM,
    METRIC_LABELS,
    MetricName,
    prometheus_name,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Without this, every counter also exports a `_created` gauge that alert rules never use.
disable_created_metrics()

_DOCS: dict[MetricName, str] = {
    MetricName.STRICT_MISMATCH: "Envelopes quarantined under strict correlation (missing or wrong runId).",
    MetricName.LEGACY_MODE: "Legacy v1 envelopes applied under strict=false (a legacy_mode row each).",
    MetricName.MISSING_END_SHA: "Terminal v2 envelopes quarantined for a missing endSha.",
    MetricName.QUARANTINE: "Quarantine rows written, any reason.",
    MetricName.ENVELOPE: "Daemon-event responses by outcome (reason label = body status).",
    MetricName.QUARANTINE_OFFLOAD: "Oversized quarantine payloads written to the object store.",
    MetricName.QUARANTINE_OFFLOAD_SKIPPED: "Oversized payload offloads skipped (rate limit or store down).",
    MetricName.ACCESS_DENIED: "Preview access denials by security reason.",
    MetricName.CACHE_INVALIDATION: "Repo-access cache invalidations by invalidation reason.",
    MetricName.RUN_FINALIZED: "Runs finalized by the maintenance backstop.",
    MetricName.QUARANTINE_PURGE: "Quarantine rows purged by retention, by reason.",
    MetricName.EVENT_PURGE: "Preview events purged by retention.",
    MetricName.BUDGET_SYNC_FAILURE: "Run-budget syncs to Valkey that failed (local accounting decided).",
    MetricName.EDGE_REJECTED: "Connections and requests refused by the HTTP edge, by reason.",
    MetricName.RUN_START_DELIVERY_FAILED: "Run starts whose start message the daemon did not take (502), by reason.",
}


class Metrics:
    """The app's counters. `inc` is the only way code records a metric."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[MetricName, Counter] = {
            metric: Counter(
                prometheus_name(metric),
                _DOCS[metric],
                labelnames=METRIC_LABELS,
                registry=self.registry,
            )
            for metric in MetricName
        }
        self._children: dict[tuple[MetricName, str, str, str, str], Counter] = {}
        self.envelope_seconds = Histogram(
            ENVELOPE_SECONDS_HISTOGRAM,
            "Daemon-event handling time, from body read to response.",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.ingest_batch = Histogram(
            INGEST_BATCH_HISTOGRAM,
            "Envelopes per ingest statement under group commit (1 = sent alone).",
            registry=self.registry,
            # One bucket per size up to the default batch (16): the benchmark replays the sizes
            # the service formed, and upper bounds of 1/2/4/8/16 overstated them by a third.
            buckets=(*range(1, 17), 24, 32),
        )

    def inc(
        self,
        metric: MetricName,
        *,
        repo: str | None,
        user: str | None,
        provider: str | None,
        reason: str | None = None,
        amount: float = 1.0,
    ) -> None:
        key = (metric, repo or "", user or "", provider or "", reason or "")
        child = self._children.get(key)
        if child is None:  # `labels()` validates its arguments on every call: once per series
            child = self._counters[metric].labels(
                repo=key[1], user=key[2], provider=key[3], reason=key[4]
            )
            self._children[key] = child
        child.inc(amount)

    def value(self, metric: MetricName, **labels: str) -> float:
        """Current value of one labelled series (0 if absent): for tests and the CLI."""
        sample = self.registry.get_sample_value(f"{prometheus_name(metric)}_total", labels)
        return sample or 0.0

    def exposition(self) -> bytes:
        """This registry, or, under `serve --workers N` (PROMETHEUS_MULTIPROC_DIR set before the
        workers imported prometheus_client), the sum over every worker's counter files."""
        if values.ValueClass is not values.MutexValue:  # prometheus_client's own test of the mode
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
