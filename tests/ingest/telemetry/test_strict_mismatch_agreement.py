"""One `preview.strict_mismatch`: Prometheus, the archive (after a rollup) and the dashboard's live
query count the same envelopes, from the `strict` the decision stored on the quarantine row.

The case that used to split them (issue 13): a strict thread whose run the sweep finalized (no
active run) receives an envelope under that run's token with a foreign runId. The decision reads
`strict` from the token's run; the archive and the dashboard used to re-derive it by joining the
run named by `coalesce(active_run_id, run_id)`, here an unknown run, and counted nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from terragon_core import MetricName
from terragon_dashboard.live import live_minutes
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.rollup import rollup
from tests.fixtures.daemon_events import envelope, post, set_strict, sql
from tests.fixtures.runs import start_run

LABELS = {"repo": "acme/web", "user": "user-1", "provider": "manual", "reason": "mismatch"}


def _archived_strict_mismatches(database_url: str, root: Path) -> tuple[int, int, list[bool]]:
    """(minutely, daily, the rows' `strict`) after rolling everything up to the current minute."""
    with repository.connect(database_url) as conn:
        # settle_seconds=-60 closes the current minute now instead of waiting for it to end.
        rollup(conn, root, settle_seconds=-60)
    con = files.open_archive(root)
    metric = MetricName.STRICT_MISMATCH.value
    minutely = con.execute(
        "SELECT coalesce(sum(quarantined), 0) FROM quarantine_minutely WHERE metric = ?", [metric]
    ).fetchone()
    daily = con.execute(
        "SELECT coalesce(sum(quarantined), 0) FROM quarantine_daily WHERE metric = ?", [metric]
    ).fetchone()
    strict = [r[0] for r in con.execute("SELECT strict FROM quarantine_rows").fetchall()]
    assert minutely is not None and daily is not None
    return int(minutely[0]), int(daily[0]), strict


def _live_strict_mismatches(database_url: str) -> int:
    frame = live_minutes(database_url, "repo_full_name")
    pairs = zip(frame["metric"].tolist(), frame["per_minute"].tolist(), strict=True)
    return sum(int(n) for metric, n in pairs if metric == MetricName.STRICT_MISMATCH)


async def test_no_active_run_foreign_run_id_is_one_strict_mismatch_everywhere(
    client, app, database_url: str, tmp_path: Path
) -> None:
    await set_strict(client, True)
    run_id, token = await start_run(client)
    await sql(database_url, "UPDATE thread_run SET started_at = now() - interval '2 hours'")
    swept = (await client.post("/api/internal/maintenance/sweep")).json()
    assert swept["finalizedRunIds"] == [run_id]
    [pointer] = await sql(database_url, "SELECT active_run_id FROM thread_run_context")
    assert pointer["active_run_id"] is None  # a strict thread with no active run

    response = await post(client, envelope("run-of-another-thread", 1), token)
    assert response.status_code == 202
    assert response.json()["reason"] == "mismatch"
    [row] = await sql(database_url, "SELECT strict, active_run_id FROM daemon_event_quarantine")
    assert row == {"strict": True, "active_run_id": None}

    prometheus = app.state.daemon_events.metrics.value(MetricName.STRICT_MISMATCH, **LABELS)
    minutely, daily, strict = await asyncio.to_thread(
        _archived_strict_mismatches, database_url, tmp_path / "archive"
    )
    live = await asyncio.to_thread(_live_strict_mismatches, database_url)
    assert strict == [True]  # the archive's row carries the row's `strict`
    assert (prometheus, minutely, daily, live) == (1, 1, 1, 1)
