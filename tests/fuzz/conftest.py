"""Fuzz suites: a short form in the default run, the long form with TERRAGON_LONG_TESTS=1."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

LONG = os.environ.get("TERRAGON_LONG_TESTS") == "1"

settings.register_profile(
    "fuzz-short",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ = settings.get_profile("fuzz-long" if LONG else "fuzz-short")

long_only = pytest.mark.skipif(
    not LONG, reason="long form: set TERRAGON_LONG_TESTS=1 to run it (minutes)"
)
