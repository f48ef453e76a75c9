"""The Prometheus alert rules in `tools/alerts/`: the thresholds are core's, and promtool accepts
the rules and passes their unit tests (skipped, with the reason, when promtool is not installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from terragon_core import (
    ACCESS_DENIED_ALERT,
    ACCESS_DENIED_ALERT_PER_MINUTE,
    ALERT_FOR_SECONDS,
    ALERT_RATE_WINDOW_SECONDS,
    ANONYMOUS_USER,
    QUARANTINE_ALERT,
    QUARANTINE_ALERT_PER_MINUTE,
    MetricName,
    prometheus_name,
)

ROOT = Path(__file__).parents[3]
ALERTS = ROOT / "tools" / "alerts"


def _rules() -> dict[str, dict]:
    doc = yaml.safe_load((ALERTS / "rules.yml").read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


@pytest.mark.parametrize(
    ("alert", "metric", "threshold", "by_repo"),
    [
        (QUARANTINE_ALERT, MetricName.QUARANTINE, QUARANTINE_ALERT_PER_MINUTE, True),
        (ACCESS_DENIED_ALERT, MetricName.ACCESS_DENIED, ACCESS_DENIED_ALERT_PER_MINUTE, False),
    ],
)
def test_rules_use_core_thresholds_and_metric_names(
    alert: str, metric: MetricName, threshold: int, by_repo: bool
) -> None:
    rule = _rules()[alert]
    expr = rule["expr"]
    series = re.escape(f"{prometheus_name(metric)}_total")
    window = re.escape(f"[{ALERT_RATE_WINDOW_SECONDS // 60}m])")
    assert re.search(rf"rate\({series}(\{{[^}}]*\}})?{window}", expr), expr
    # a stranger's denials (no valid credential) never page on a tenant's behalf
    assert (f'user!="{ANONYMOUS_USER}"' in expr) is (metric is MetricName.ACCESS_DENIED)
    assert re.search(rf"\* 60 > {threshold}$", expr), expr
    assert ("by (repo)" in expr) is by_repo
    assert rule["for"] == f"{ALERT_FOR_SECONDS // 60}m"


def _promtool() -> str | None:
    for candidate in (
        os.environ.get("PROMTOOL"),
        shutil.which("promtool"),
        str(ROOT / ".data" / "promtool" / "usr" / "bin" / "promtool"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip(
            "promtool not installed: run tools/alerts/get-promtool.sh (Debian's prometheus "
            "package, unpacked; needs apt-get and network) or set PROMTOOL=/path/to/promtool"
        )
    check = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=ALERTS, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 2 rules found" in check.stdout
    test = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"], cwd=ALERTS, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout
