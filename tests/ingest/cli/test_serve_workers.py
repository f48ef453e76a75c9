"""`terragon serve --workers 2` as production runs it: two worker processes behind one port,
`/metrics` answering the sum over both from whichever worker takes the scrape, one shared
preview signing secret (the configured one, inherited), and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from terragon_core import MetricName, prometheus_name
from terragon_ingest.settings import Settings
from terragon_ingest.workers import MULTIPROC_ENV, prepare_workers
from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines
from tests.fixtures.settings import good_secrets
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import TERRAGON, _status

BATCH = 40


def _post_without_token(url: str) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _unauthorized_total(base: str, metrics_token: str) -> float:
    request = urllib.request.Request(f"{base}/metrics")
    request.add_header("Authorization", f"Bearer {metrics_token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    name = prometheus_name(MetricName.ENVELOPE)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{name}_total" and sample.labels.get("reason") == "unauthorized"
    )


def _worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_two_workers_share_one_port_one_metrics_view_and_stop_together(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_DATA_DIR": str(tmp_path),
        "TERRAGON_BACKGROUND_JOBS": "false",
        # 2 x 4 connections, not 2 x 16: the suite's server is shared (a CI run once saw one
        # worker never log its start; its log is printed below if that happens again).
        "TERRAGON_DB_POOL_MAX": "4",
    }
    env |= good_secrets()  # one signing secret, configured, inherited by both workers
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = OutputLines(proc)
    try:
        wait_until(lambda: _status(f"{base}/readyz") == 200, 60, "the workers to be ready")
        wait_until(lambda: len(_worker_pids(proc.pid)) >= 2, 30, "two worker processes")
        # Both workers serving (each logs its start), then concurrent connections spread over
        # both accept loops: send batches until both have recorded a request (bounded).
        try:
            wait_until(lambda: output.count("ingest_started") >= 2, 60, "both workers started")
        except AssertionError as exc:  # say why: the workers' own log
            raise AssertionError(f"{exc}\n{output.text()[-3000:]}") from None
        metrics_dir = tmp_path / "prometheus-multiproc"
        sent = 0

        def recording_workers() -> int:
            return len(list(metrics_dir.glob("counter_*.db")))

        with ThreadPoolExecutor(8) as pool:
            for _ in range(50):
                codes = list(pool.map(_post_without_token, [f"{base}/api/daemon-event"] * BATCH))
                assert codes == [401] * BATCH
                sent += BATCH
                if recording_workers() >= 2:
                    break
        assert recording_workers() >= 2, "one worker took every request"
        # ... and every scrape, whichever worker answers it, sees all requests.
        scrape = env["TERRAGON_METRICS_TOKEN"]
        assert [_unauthorized_total(base, scrape) for _ in range(8)] == [float(sent)] * 8
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    output.join(10)
    assert code == 0, output.text()[-2000:]
    assert _status(f"{base}/healthz") is None


def test_prepare_workers_makes_a_fresh_metrics_dir_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TERRAGON_SIGNING_SECRET", raising=False)
    monkeypatch.setenv("TERRAGON_DATA_DIR", str(tmp_path))
    stale = tmp_path / "prometheus-multiproc" / "counter_1.db"
    stale.parent.mkdir()
    stale.write_bytes(b"left by the previous server")
    for key in (MULTIPROC_ENV, "TERRAGON_LOG_LEVEL", "TERRAGON_LOG_FORMAT"):
        # setenv first: a bare delenv of an absent key records nothing to restore, and what
        # prepare_workers sets would leak into later tests (PROMETHEUS_MULTIPROC_DIR did).
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    prepare_workers(Settings(), log_level="warning", json_logs=True)
    assert not stale.exists(), "counters from a previous server must not be summed in"
    assert os.environ[MULTIPROC_ENV] == str((tmp_path / "prometheus-multiproc").resolve())
    # A signing secret is the operator's to set (`serve` refuses without one), never made here:
    # a made-up one would differ between two hosts behind one load balancer.
    assert "TERRAGON_SIGNING_SECRET" not in os.environ
