"""In-process alert hooks, for sites without Prometheus: the same two rules as
`tools/alerts/rules.yml`, evaluated from Postgres after each rollup, POSTed as JSON to
`TERRAGON_ALERT_WEBHOOK_URL` once per breach window. Like the Prometheus rule, the access-denied
rule leaves out denials without a valid credential (`user_id = 'anonymous'`).

A breach window opens when a rule's condition holds (the trailing 5-minute rate stayed above the
threshold for each of the last 10 closed minutes) and closes when it no longer does. Open windows
are rows of `alert_state`, so a window notifies once however many replicas or restarts; a POST
that fails is retried at the next evaluation (the row is written only after a 2xx).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from terragon_core import (
    ACCESS_DENIED_ALERT,
    ACCESS_DENIED_ALERT_PER_MINUTE,
    ALERT_FOR_SECONDS,
    ALERT_RATE_WINDOW_SECONDS,
    ANONYMOUS_USER,
    QUARANTINE_ALERT,
    QUARANTINE_ALERT_PER_MINUTE,
    MetricName,
    PreviewEventName,
    prometheus_name,
)
from terragon_ingest.telemetry import repository

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Breach:
    rule: str
    dimensions: dict[str, str]
    rate_per_minute: float
    threshold: float
    metric: str

    @property
    def dims_key(self) -> str:
        return json.dumps(self.dimensions, sort_keys=True)


def find_breaches(conn: repository.Conn, end: datetime) -> list[Breach]:
    """Every (rule, dimensions) whose condition holds over the window ending at `end`."""
    window = {
        "end": end,
        "for_minutes": ALERT_FOR_SECONDS // 60,
        "rate_minutes": ALERT_RATE_WINDOW_SECONDS // 60,
    }
    breaches = [
        Breach(
            QUARANTINE_ALERT,
            {"repo": repo},
            low,
            QUARANTINE_ALERT_PER_MINUTE,
            prometheus_name(MetricName.QUARANTINE) + "_total",
        )
        for repo, low, _high in repository.fetch_quarantine_breaches(
            conn, threshold=QUARANTINE_ALERT_PER_MINUTE, **window
        )
    ]
    denied = repository.fetch_access_denied_breach(
        conn,
        threshold=ACCESS_DENIED_ALERT_PER_MINUTE,
        event_name=PreviewEventName.ACCESS_DENIED.value,
        anonymous_user=ANONYMOUS_USER,
        **window,
    )
    if denied is not None:
        breaches.append(
            Breach(
                ACCESS_DENIED_ALERT,
                {},
                denied[0],
                ACCESS_DENIED_ALERT_PER_MINUTE,
                prometheus_name(MetricName.ACCESS_DENIED) + "_total",
            )
        )
    return breaches


def _payload(breach: Breach, end: datetime) -> dict[str, Any]:
    return {
        "status": "firing",
        "alert": breach.rule,
        "dimensions": breach.dimensions,
        "ratePerMinute": round(breach.rate_per_minute, 3),
        "thresholdPerMinute": breach.threshold,
        "forSeconds": ALERT_FOR_SECONDS,
        "metric": breach.metric,
        "windowEnd": end.isoformat(),
    }


def evaluate_alerts(
    conn: repository.Conn, webhook_url: str, end: datetime, *, timeout: float = 5.0
) -> list[Breach]:
    """Notify every newly opened breach window; close the windows whose condition cleared.
    Returns the breaches notified by this call."""
    breaches = find_breaches(conn, end)
    open_windows = repository.fetch_alert_states(conn)
    current = {(b.rule, b.dims_key) for b in breaches}
    for rule, dims_key in open_windows - current:
        repository.delete_alert_state(conn, rule, dims_key)
        log.info("alert_resolved", rule=rule, dimensions=dims_key)
    notified: list[Breach] = []
    with httpx.Client(timeout=timeout) as client:
        for breach in breaches:
            if (breach.rule, breach.dims_key) in open_windows:
                continue
            try:
                response = client.post(webhook_url, json=_payload(breach, end))
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning(
                    "alert_webhook_failed",
                    rule=breach.rule,
                    dimensions=breach.dimensions,
                    error=str(exc),
                    hint="check TERRAGON_ALERT_WEBHOOK_URL; retried at the next rollup",
                )
                continue
            repository.insert_alert_state(
                conn, breach.rule, breach.dims_key, breach.dimensions, end
            )
            notified.append(breach)
            log.warning(
                "alert_fired",
                rule=breach.rule,
                dimensions=breach.dimensions,
                rate_per_minute=breach.rate_per_minute,
            )
    return notified
