"""Two ingest replicas as production runs them (issue 14): two `terragon serve` processes on two
ports, each with a data directory of its own, sharing one PostgreSQL, one Valkey, one archive and
one object store, with their periodic jobs on (every job on a 1 s slot).

Daemon envelopes are spread over both: each run's envelopes alternate replicas and every
envelope is delivered to both at once (the second copy is a retry that reached the other
replica). Then: stored exactly once in seq order; a preview session started on one replica is
exchanged on the other, its token spent for both, its cookie good on both; stale runs finalized
exactly once; the rollup's archive holds each row once; each job slot run by one replica.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from terragon_core import EnvelopeStatus, MetricName, prometheus_name
from tests.fixtures.net import free_port
from tests.fixtures.processes import OutputLines
from tests.fixtures.runs import START_PATH, start_body, thread_body
from tests.fixtures.settings import good_secrets
from tests.fixtures.waiting import wait_until
from tests.ingest.cli.test_cli_up import TERRAGON

JOB_INTERVAL = 1.0
RUNS = 6
SEQS = 6
STALE_RUNS = 3
SHARED_ENV = ("TERRAGON_ARCHIVE_DIR", "OBJECT_STORE_URL")
"""What every replica must point at the same place (besides the database, Valkey, secrets)."""


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]
    output: OutputLines


@dataclass
class Pair:
    replicas: list[Replica]
    env: dict[str, str]
    token: str
    origin_port: int
    """The port of the preview origin template (the load balancer's, in production)."""

    def client(self, index: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.replicas[index].url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )


def _start(env: dict[str, str], data_dir: Path) -> Replica:
    port = free_port()
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--port", str(port)],
        env={**env, "TERRAGON_DATA_DIR": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return Replica(f"http://127.0.0.1:{port}", proc, OutputLines(proc))


def _stop(replica: Replica) -> int:
    replica.proc.send_signal(signal.SIGTERM)
    try:
        return replica.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        replica.proc.kill()
        replica.proc.wait(10)
        raise


@pytest.fixture(name="pair")
def fx_pair(database_url: str, valkey_url: str) -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="terragon-replicas-"))
    origin_port = free_port()
    secrets = good_secrets()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= secrets | {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_ENV": "test",
        "TERRAGON_ARCHIVE_DIR": str(root / "archive"),
        "OBJECT_STORE_URL": f"file://{root / 'objects'}",
        "TERRAGON_PUBLIC_URL": f"http://127.0.0.1:{origin_port}",
        "TERRAGON_PREVIEW_ORIGIN": f"http://{{previewSessionId}}.preview.localhost:{origin_port}",
        "TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM": "true",
        "TERRAGON_BACKGROUND_JOBS": "true",
        "TERRAGON_JOB_INTERVAL_SECONDS": str(JOB_INTERVAL),
        "TERRAGON_ARCHIVE_SETTLE_SECONDS": "0",
        "TERRAGON_DB_POOL_MAX": "4",
    }
    replicas = [_start(env, root / f"host-{i}") for i in range(2)]
    try:
        for replica in replicas:
            wait_until(lambda r=replica: _ready(r), 60, f"{replica.url} to be ready")
        yield Pair(replicas, env, secrets["TERRAGON_INTERNAL_TOKEN"], origin_port)
        codes = [_stop(r) for r in replicas]
        assert codes == [0, 0], [r.output.text()[-2000:] for r in replicas]
    finally:
        for replica in replicas:
            if replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait(10)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _ready(replica: Replica) -> bool:
    if replica.proc.poll() is not None:
        raise AssertionError(f"replica exited: {replica.output.text()[-2000:]}")
    try:
        return httpx.get(replica.url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_run(client: httpx.Client, thread_id: str) -> tuple[str, str]:
    client.post("/api/internal/threads", json=thread_body(thread_id)).raise_for_status()
    response = client.post(START_PATH, json=start_body(thread_id))
    response.raise_for_status()
    body = response.json()
    return body["runId"], body["daemonMessage"]["token"]


def _envelope(thread_id: str, run_id: str, seq: int, uuids: list[str]) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "threadChatId": "chat-1",
        "payloadVersion": 2,
        "runId": run_id,
        "seq": seq,
        "eventId": f"evt-{run_id}-{seq}",
        "messages": [{"type": "assistant", "uuid": u, "text": f"seq {seq}"} for u in uuids],
    }


def _deliver_run(pair: Pair, index: int) -> dict[str, Any]:
    """One daemon: seq 1..SEQS in order, seq n first to replica n % 2, and at the same time its
    retry to the other one; then one envelope under a wrong runId (quarantined `mismatch`)."""
    thread_id = f"replica-thread-{index}"
    with pair.client(index % 2) as client:
        run_id, token = _start_run(client, thread_id)
    emitted: list[str] = []
    statuses: list[tuple[str, str]] = []
    urls = [r.url + "/api/daemon-event" for r in pair.replicas]
    with ThreadPoolExecutor(2) as pool:
        for seq in range(1, SEQS + 1):
            uuids = [str(uuid.uuid4()) for _ in range(2)]
            emitted += uuids
            body = _envelope(thread_id, run_id, seq, uuids)
            first, second = urls[seq % 2], urls[(seq + 1) % 2]
            answers = list(
                pool.map(
                    lambda url, body=body: httpx.post(
                        url, json=body, headers={"X-Daemon-Token": token}, timeout=30
                    ),
                    (first, second),
                )
            )
            # applied: 200; its duplicate: 202 (acknowledged, nothing written)
            assert sorted(a.status_code for a in answers) == [200, 202], [a.text for a in answers]
            statuses.append(tuple(sorted(a.json()["status"] for a in answers)))
        wrong = _envelope(thread_id, f"not-{run_id}", SEQS + 1, [str(uuid.uuid4())])
        quarantined = httpx.post(urls[index % 2], json=wrong, headers={"X-Daemon-Token": token})
        assert quarantined.status_code == 202, quarantined.text
    return {"run_id": run_id, "emitted": emitted, "statuses": statuses}


def _rows(database_url: str, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _metric_total(url: str, metric: MetricName, metrics_token: str) -> float:
    auth = {"Authorization": f"Bearer {metrics_token}"}
    text = httpx.get(url + "/metrics", headers=auth, timeout=10).text
    name = f"{prometheus_name(metric)}_total"
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def _archive_sql(pair: Pair, query: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [TERRAGON, "archive", "sql", "--format", "json", query],
        env={**pair.env, "TERRAGON_DATA_DIR": tempfile.gettempdir()},
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def _wait_for_more_slots(database_url: str, job: str, count: int) -> None:
    """Until `count` more slots of `job` have been run (finished) by either replica."""
    query = "SELECT count(*) FROM job_slot WHERE job = %s AND finished_at IS NOT NULL"
    [(now,)] = _rows(database_url, query, (job,))
    wait_until(
        lambda: _rows(database_url, query, (job,))[0][0] >= now + count, 30, f"{count} {job} slots"
    )


def _on_origin(session: dict[str, Any], **headers: str) -> dict[str, str]:
    return {"host": urlsplit(session["previewUrl"]).netloc, **headers}


def _check_preview_across_replicas(pair: Pair) -> None:
    """A session started on replica 0, exchanged on replica 1: the token is spent for both, the
    cookie (signed with the shared secret) is good on both."""
    with pair.client(0) as client:
        thread_id = "replica-preview"
        run_id, _ = _start_run(client, thread_id)
        started = client.post(
            "/api/internal/preview/session/start",
            json={
                "threadId": thread_id,
                "threadChatId": "chat-1",
                "runId": run_id,
                "userId": "user-1",
                "upstreamOrigin": "http://127.0.0.1:9",
            },
        )
        assert started.status_code == 200, started.text
        session = started.json()
    assert urlsplit(session["previewUrl"]).port == pair.origin_port
    body = {"token": session["exchangeToken"]}
    exchanged = httpx.post(
        pair.replicas[1].url + "/__terragon/exchange", json=body, headers=_on_origin(session)
    )
    assert exchanged.status_code == 200, exchanged.text
    cookie = exchanged.headers["set-cookie"].split(";", 1)[0]
    replayed = httpx.post(
        pair.replicas[0].url + "/__terragon/exchange", json=body, headers=_on_origin(session)
    )
    # single use across replicas
    assert (replayed.status_code, replayed.json()["code"]) == (409, "token_replay"), replayed.text
    for replica in pair.replicas:
        minted = httpx.post(
            replica.url + "/__terragon/subscription-token",
            headers=_on_origin(session, cookie=cookie),
        )
        assert minted.status_code == 200, (replica.url, minted.text)
        assert minted.json()["token"]


def test_two_replicas_store_once_in_order_and_run_each_job_slot_once(
    pair: Pair, database_url: str
) -> None:
    with ThreadPoolExecutor(3) as pool:
        delivered = list(pool.map(lambda i: _deliver_run(pair, i), range(RUNS)))

    # Exactly once, in seq order: every message once, the messages' order is the seqs' order.
    for run in delivered:
        # Each envelope: applied by one replica, a duplicate (or, if the retry won the run lock
        # first, the same answer the other way round) at the other, never applied twice.
        assert run["statuses"] == [(EnvelopeStatus.APPLIED, EnvelopeStatus.DUPLICATE)] * SEQS
        rows = _rows(
            database_url,
            "SELECT message_uuid FROM run_message WHERE run_id = %s ORDER BY ordinal",
            (run["run_id"],),
        )
        assert [r[0] for r in rows] == run["emitted"]
        [(last_seq, events)] = _rows(
            database_url,
            "SELECT last_accepted_seq, accepted_event_count FROM thread_run WHERE run_id = %s",
            (run["run_id"],),
        )
        assert (last_seq, events) == (SEQS, SEQS)

    _check_preview_across_replicas(pair)

    # The sweep: runs that went quiet are finalized once each, by whichever replica held the
    # slot (both sweep every second; the writer re-checks status, the slot claim runs one).
    with pair.client(1) as client:
        stale = [_start_run(client, f"replica-stale-{i}")[0] for i in range(STALE_RUNS)]
    _rows(
        database_url,
        "UPDATE thread_run SET started_at = now() - interval '2 hours' WHERE run_id = ANY(%s)",
        (stale,),
    )

    def finalized() -> list[tuple[Any, ...]]:
        return _rows(
            database_url,
            "SELECT run_id, count(*) FROM preview_event"
            " WHERE event_name = 'preview.run.finalized' AND run_id = ANY(%s) GROUP BY run_id",
            (stale,),
        )

    wait_until(lambda: len(finalized()) == STALE_RUNS, 30, "the sweep to finalize stale runs")
    _wait_for_more_slots(database_url, "maintenance_sweep", 3)  # later sweeps find nothing
    assert sorted(finalized()) == sorted((run_id, 1) for run_id in stale)
    scrape = pair.env["TERRAGON_METRICS_TOKEN"]
    counted = sum(_metric_total(r.url, MetricName.RUN_FINALIZED, scrape) for r in pair.replicas)
    assert counted == STALE_RUNS

    # The rollup: once the minute of these rows has closed, the archive (written by whichever
    # replica held each slot, read here by the CLI from neither) holds each row exactly once.
    [(quarantined,)] = _rows(database_url, "SELECT count(*) FROM daemon_event_quarantine")
    assert quarantined == RUNS

    def archived() -> dict[str, Any]:
        return _archive_sql(
            pair, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM quarantine_rows"
        )[0]

    wait_until(lambda: archived()["n"] >= RUNS, 90, "the rollup to archive the closed minute")
    _wait_for_more_slots(database_url, "archive_rollup", 3)  # later rollups add no row
    assert archived() == {"n": RUNS, "d": RUNS}

    # Each slot ran once: one claim per (job, slot), both replicas won some, and the sweep ran
    # once per elapsed interval, not once per replica (two replicas without the claim: twice).
    # One query, one snapshot: the replicas go on claiming slots while the test reads.
    rows = _rows(
        database_url,
        "SELECT claimed_by, slot_start, failed FROM job_slot WHERE job = 'maintenance_sweep'",
    )
    claims = collections.Counter(claimed_by for claimed_by, _, _ in rows)
    assert len(claims) == 2, claims
    assert not any(failed for _, _, failed in rows), rows
    starts = [slot_start for _, slot_start, _ in rows]
    runs, slots = len(rows), len(set(starts))
    span = (max(starts) - min(starts)).total_seconds()
    assert runs == slots  # one claim per slot
    # (the lower bound only says the sweeps kept coming: a loaded machine may skip a few slots)
    assert span / JOB_INTERVAL / 4 < runs <= span / JOB_INTERVAL + 1, (runs, span)
    [(runs, slots)] = _rows(
        database_url,
        "SELECT count(*), count(DISTINCT slot_start) FROM job_slot WHERE job = 'archive_rollup'",
    )
    assert runs == slots >= 2
