"""The soak's short form (TERRAGON_LONG_TESTS=1, ~3 min: embedded PostgreSQL + Valkey, two
replicas behind the proxy, moto's S3 server, the periodic jobs every 10 s): the figures of a
loaded machine vary, so only what does not depend on its speed is asserted."""

from __future__ import annotations

import os
import shutil

import pytest
from rich.console import Console

from tools.bench.cli import build_parser, run

LONG = os.environ.get("TERRAGON_LONG_TESTS") == "1"


@pytest.mark.skipif(not LONG, reason="soak short form (~3 min): set TERRAGON_LONG_TESTS=1")
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_soak_two_replicas_on_s3_runs_every_job_slot_without_bloat() -> None:
    args = build_parser().parse_args(
        [
            "--only",
            "soak",
            "--quick",
            "--soak",
            "30",
            "--replicas",
            "2",
            "--s3",
            "--connections",
            "8",
            "--service-env",
            "TERRAGON_JOB_INTERVAL_SECONDS=10",
        ]
    )
    [result] = run(args, Console(stderr=True, quiet=True))
    assert result.skipped is None, result.skipped
    details = result.details
    print("\n".join(details["lines"]))
    assert details["replicas"] == 2 and len(details["windows"]) == 5
    assert all(w["errors"] == 0 for w in details["windows"])
    verdicts = details["verdicts"]
    assert verdicts["job slots"]["met"], verdicts["job slots"]["line"]
    assert all(s["expected"] >= 2 for s in details["jobSlots"].values()), details["jobSlots"]
    assert verdicts["bytes per row"]["met"], verdicts["bytes per row"]["line"]
    assert details["archive"]["quarantined"] > 0 and details["archive"]["offloaded"] > 0
    assert "payload store: 0 object(s)" not in details["s3"][0]
