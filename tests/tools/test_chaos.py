"""The chaos tool: its cutting proxy and the data checks' verdicts (fast), the smoke campaign
(default run, ~55 s on an idle machine) and the ≤ 3 min short campaign (TERRAGON_LONG_TESTS=1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path
from typing import cast

import pytest

from terragon_core import EVENT_PURGE_EVENT, QUARANTINE_PURGE_EVENT
from terragon_daemon.logs import kv
from tools.bench.stack import RunHandle
from tools.chaos.campaign import Config, Report, run_campaign
from tools.chaos.datacheck import DataReport, OldDay
from tools.chaos.mischief import Ack, ZombieDaemon
from tools.chaos.proxy import CuttingProxy

LONG = os.environ.get("TERRAGON_LONG_TESTS") == "1"


def test_proxy_forwards_and_cuts_after_the_upstream_answered() -> None:
    async def scenario() -> tuple[bytes, bytes, int]:
        seen: list[bytes] = []

        async def upstream(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            seen.append(await r.readexactly(4))
            w.write(b"pong")
            await w.drain()
            w.close()

        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        answers = []
        cuts = 0
        for probability in (0.0, 1.0):
            proxy = CuttingProxy([port], probability)
            proxy.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writer.write(b"ping")
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.read(), 10))
                writer.close()
                cuts += proxy.cuts
            finally:
                proxy.stop()
        server.close()
        assert seen == [b"ping", b"ping"]  # the upstream got (and "committed") both requests
        return answers[0], answers[1], cuts

    forwarded, cut, cuts = asyncio.run(scenario())
    assert forwarded == b"pong"
    assert cut == b""
    assert cuts == 1


def test_zombie_daemon_ledger_reads_the_daemons_own_log_lines(tmp_path: Path) -> None:
    """The real zombie's acknowledged quarantines come from its log: the daemon's own format."""
    line = "ts=2026-12-07T00:00:00.000Z level=warning logger=terragon_daemon.delivery event="
    fields = {"run_key": "r", "seq": 3, "terminal": False, "http_status": 202, "attempt": 1}
    log = tmp_path / "daemon.log"
    log.write_text(
        "\n".join(
            line + kv("batch_delivered", event_id=e, status=s, reason=r, **fields)
            for e, s, r in [
                ("evt-applied", "applied", None),
                ("evt-q1", "quarantined", "mismatch"),
                ("evt-stale", "stale_seq", None),
                ("evt-q2", "quarantined", "mismatch"),
            ]
        )
        + "\n"
        + line
        + kv("batch_retry_scheduled", event_id="evt-503", status="unavailable", **fields)
    )
    run = RunHandle("t", "chat-1", "run-1", "token")
    zombie = ZombieDaemon(run, cast("subprocess.Popen[bytes]", None), log)
    assert zombie.quarantined() == {"evt-q1": "mismatch", "evt-q2": "mismatch"}


def test_ledger_expects_each_kinds_answer() -> None:
    def ack(kind: str, status: str, reason: str | None = None, attempts: int = 1) -> Ack:
        quarantine_id = "q" if status in ("quarantined", "applied") else None
        return Ack(kind, "e", status, reason, quarantine_id, attempts, 10)

    assert ack("zombie", "quarantined", "mismatch").expected
    assert not ack("zombie", "quarantined", "missing_run_id").expected
    assert not ack("oversized", "applied").expected
    assert ack("stale_seq", "stale_seq").expected
    assert ack("strict_v1", "quarantined", "missing_run_id").expected
    assert ack("legacy_v1", "applied").expected
    # A v1 retry whose first attempt committed (the answer lost to a cut) is a duplicate.
    assert ack("legacy_v1", "duplicate", attempts=2).expected
    assert not ack("legacy_v1", "duplicate").expected
    assert not ack("zombie", "unanswered").expected


def test_data_report_fails_on_any_missing_piece() -> None:
    """`Report.ok` includes the data checks: each missing piece alone makes them fail."""

    def passing() -> DataReport:
        old = OldDay(date(2026, 11, 5), 12, 8, ["k"], purged_after=5.0, faults_ended_after=9.0)
        return DataReport(
            old=old,
            purge_events={QUARANTINE_PURGE_EVENT: 12, EVENT_PURGE_EVENT: 8},
            old_objects_left=0,
            sent=Counter({"zombie": 3}),
            acknowledged=3,
            acknowledged_once=3,
            stale_rows=0,
            offloaded=2,
            offloaded_present=2,
            aggregates={"2026-11-05": (12, 12, 12)},
            quarantine_archive=(20, 20, 20),
            preview_archive=(9, 9, 9),
            orphans={"run_message": 0, "daemon_event": 0},
        )

    assert passing().ok
    broken: list[dict[str, object]] = [
        {"acknowledged_once": 2},  # an acknowledged quarantine row missing (or twice)
        {"stale_rows": 1},
        {"offloaded_present": 1},  # a row points at a payload the store lacks
        {"offloaded": 0, "offloaded_present": 0},  # nothing offloaded: the path was not run
        {"aggregates": {"2026-11-05": (12, 11, 12)}},
        {"quarantine_archive": (0, 0, 0)},  # no quarantine rows at all
        {"preview_archive": (9, 8, 8)},
        {"old_objects_left": 1},
        {"purge_events": {QUARANTINE_PURGE_EVENT: 12}},
        {"unexpected": ["zombie applied"]},
        {"orphans": {"run_message": 1, "daemon_event": 0}},  # a message row without its run
        {"orphans": {}},  # not checked
    ]
    for change in broken:
        report = passing()
        for name, value in change.items():
            setattr(report, name, value)
        assert not report.ok, change
    late = passing()
    assert late.old is not None
    late.old.purged_after = 10.0  # purged after the faults ended
    assert not late.ok


def _assert_campaign(cfg: Config) -> Report:
    report = run_campaign(cfg, say=print)
    print("\n".join(report.lines()))
    skipped = [n for n in report.notes if n.startswith("SKIPPED")]
    if skipped:
        pytest.skip(skipped[0])
    assert report.ok, "\n".join(report.lines())
    assert report.service_kills >= 1 and report.postgres_restarts == 1
    # While one replica was down the others answered, and each replica took connections.
    if cfg.replicas > 1:
        assert report.others_serving["ok"] >= report.service_kills, report.others_serving
        assert len(report.per_replica) == cfg.replicas and all(report.per_replica)
    assert report.archive_reconciled, report.archive
    assert report.emitted > 0 and report.lost == 0 and report.duplicated == 0
    # Exchange, proxy and subscription-token on a session origin each answered 503 at least once.
    assert report.preview_probes["503"] >= 3, report.preview_probes
    # Every kind of data (issue 27): quarantine rows from the misbehaving daemons, reconciled
    # with the archive (the purged day's rows counted: they live in the archive only now).
    data = report.data
    rows, archived, distinct = report.archive["quarantine_rows"]
    assert rows > 0 and rows == archived == distinct, report.archive
    assert data.acknowledged > 0 and data.acknowledged_once == data.acknowledged, data.lines()
    assert not data.unexpected and data.stale_rows == 0, data.unexpected
    assert data.offloaded > 0 and data.offloaded_present == data.offloaded, data.missing_objects
    # Retention purged the old day during the faults; the archive still holds it, aggregates too.
    assert data.purged and data.purge_reconciled, data.lines()
    assert data.old is not None and str(data.old.day) in data.aggregates, data.aggregates
    assert data.aggregates_ok, data.aggregates
    return report


def test_chaos_smoke_loses_and_duplicates_nothing() -> None:
    """The short form of issues 7 and 14's campaign, in every run (~55 s): two replicas behind
    the proxy, SIGKILL of one at a time, a PostgreSQL restart, a Valkey outage with preview
    probes on both, connections cut after commit, replica 1's clock 5 s ahead, misbehaving
    daemons (zombie, oversized, stale seq, v1 under strict and not) and retention purging an old
    day meanwhile; every periodic job once per slot; the archive, its aggregates, the quarantine
    ledger and the offloaded payloads reconciled at the end."""
    report = _assert_campaign(
        Config(
            duration=12,  # the faults' window; the fleet (50 lines at 3/s) outlives it
            daemons=4,
            messages=50,
            rate=3,
            kill_every=5,  # replica 0 killed at 5 s while replica 1 serves
            valkey_down=4,
            cut_probability=0.1,
            drain_timeout=60,
            replicas=2,
            job_interval=3,  # slots enough in a short window for the once-per-slot check
            skew=5,  # replica 1 sees each boundary 5 s early (libfaketime)
        )
    )
    # Which replica wins the few slots of a 12 s window is a race (the skewed one is also killed
    # and restarted): the smoke checks once per slot with the skew applied; the failover campaign,
    # with minutes of slots, checks that the skewed replica wins them.
    assert report.job_slots.ok, report.job_slots.line()


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="short campaign (~3 min): set TERRAGON_LONG_TESTS=1")
def test_chaos_short_campaign() -> None:
    report = _assert_campaign(
        Config(
            duration=140,
            daemons=20,
            messages=300,
            rate=2,
            kill_every=45,
            valkey_down=30,
            cut_probability=0.05,
            drain_timeout=90,
            replicas=2,
        )
    )
    # 140 s spans closed minutes: the replicas' rollup slots (and the final one) archived rows.
    assert report.archive["preview_events"][0] > 0, report.archive


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="failover campaign (~2.5 min): set TERRAGON_LONG_TESTS=1")
def test_chaos_failover_campaign_with_a_skewed_replica() -> None:
    """Issue 27's short form: the PostgreSQL fault is the primary's death (SIGKILL of its whole
    process group) and the synchronous standby's promotion, the dead primary rebuilt as the new
    standby; one replica's clock runs 45 s ahead. Nothing acknowledged is lost, every job still
    runs once per slot, nothing is finalized early."""
    report = _assert_campaign(
        Config(
            duration=100,
            daemons=8,
            messages=250,
            rate=3,
            kill_every=35,
            valkey_down=8,
            cut_probability=0.05,
            drain_timeout=90,
            replicas=2,
            failover=True,
            skew=45,
        )
    )
    failover = report.failover
    assert failover is not None and failover.synchronous
    assert failover.first_apply is not None and failover.first_apply < 30, failover
    assert failover.rebuilt is not None, "the dead primary came back as the standby"
    if report.skew:  # faketime installed (.ci/setup.d/faketime.sh)
        # The skewed replica sees each boundary 45 s early: it wins slots, and none ran twice.
        assert report.job_slots.winners.get("replica 1", 0) > 0, report.job_slots.line()
    assert report.job_slots.ok and not report.finalized_early, report.job_slots.line()
    assert report.job_slots.expected > 0, report.job_slots.line()
