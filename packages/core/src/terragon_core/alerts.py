"""Alert thresholds (CONTRACT §6): shared by the Prometheus rules in `tools/alerts/rules.yml`,
the in-process alert hooks and the dashboard, which draws them on its charts."""

from __future__ import annotations

from typing import Final

QUARANTINE_ALERT: Final = "PreviewQuarantineHigh"
"""The alert rule that pages on quarantined envelopes (`tools/alerts/rules.yml`; the dashboard names
it where it draws its threshold)."""
ACCESS_DENIED_ALERT: Final = "PreviewAccessDeniedHigh"
"""The alert rule that pages on preview access denials."""
QUARANTINE_ALERT_PER_MINUTE: Final = 5
"""Quarantined envelopes per minute, per repo, above which on-call is paged."""
ACCESS_DENIED_ALERT_PER_MINUTE: Final = 20
"""Preview access denials per minute, over all repos, above which on-call is paged."""
ALERT_RATE_WINDOW_SECONDS: Final = 300
"""The rate is averaged over this trailing window (`rate(...[5m])`)."""
ALERT_FOR_SECONDS: Final = 600
"""The rate must stay above the threshold this long before the alert fires (`for: 10m`)."""
