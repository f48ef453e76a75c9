"""Telemetry: Prometheus counters, schema-checked preview events, trace ids (from `kit.trace`)."""

from __future__ import annotations

from terragon_ingest.kit.trace import trace_id_from
from terragon_ingest.telemetry.events import build_event, emit_event, log_event
from terragon_ingest.telemetry.metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = [
    "CONTENT_TYPE_LATEST",
    "Metrics",
    "build_event",
    "emit_event",
    "log_event",
    "trace_id_from",
]
