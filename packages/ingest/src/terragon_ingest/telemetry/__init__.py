"""Telemetry: Prometheus counters, schema-checked preview events, trace ids."""

from __future__ import annotations

from terragon_ingest.telemetry.events import build_event, emit_event, log_event
from terragon_ingest.telemetry.metrics import CONTENT_TYPE_LATEST, Metrics
from terragon_ingest.telemetry.trace import new_traceparent, trace_id_from

__all__ = [
    "CONTENT_TYPE_LATEST",
    "Metrics",
    "build_event",
    "emit_event",
    "log_event",
    "new_traceparent",
    "trace_id_from",
]
