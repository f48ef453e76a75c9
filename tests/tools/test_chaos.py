"""The chaos tool: its cutting proxy (fast, default run); a ~60 s smoke campaign and the ≤ 3 min
short campaign (both with TERRAGON_LONG_TESTS=1)."""

from __future__ import annotations

import asyncio
import os

import pytest

from tools.chaos.campaign import Config, Report, run_campaign
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
    return report


def test_chaos_smoke_loses_and_duplicates_nothing() -> None:
    """The short form of issues 7 and 14's campaign, in every run (~55 s): two replicas behind
    the proxy, SIGKILL of one at a time, a PostgreSQL restart, a Valkey outage with preview
    probes on both, connections cut after commit, replica 1's clock 5 s ahead; every periodic
    job once per slot, the archive reconciled at the end."""
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
    if report.skew:  # faketime installed (.ci/setup.d/faketime.sh)
        assert report.job_slots.winners.get("replica 1", 0) > 0, report.job_slots.line()


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
