"""Cost as the work grows (issue 16, item 5): the same work on a system that holds a lot of data
against the same work on an almost empty one, in one run.

- apply on a run that already holds 1 M messages vs a fresh run (target ≥ 0.9 x): dedupe and
  ordering must stay index probes. One connection each, alternated twice, the better of each:
  the run's lock serialises its envelopes anyway, so one connection is how a run is fed.
- the rollup of one closed hour (the same rows in both) when its day partition holds 5 M rows vs
  100 k rows (target ≤ 2 x): the hour must be found by an index, not by reading the day.
- the dashboard's script run over 90 days vs 30 days of archive (target ≤ 1.5 x).

`--quick` shrinks the volumes (200 k messages, 1 M-row day, 30 vs 10 days) and says so.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import psycopg

from tools.bench.archive import seed_segments
from tools.bench.context import Context
from tools.bench.dashboard import TIMED_RUNS, timed_runs
from tools.bench.report import BenchResult, judge
from tools.bench.stack import RunHandle, create_run
from tools.bench.synthetic_archive import generate_archive
from tools.bench.wrk import WrkResult, run_wrk

DAEMON_EVENT = "/api/daemon-event"
_HOUR_US = 3_600_000_000


def bench_growth(ctx: Context) -> list[BenchResult]:
    return [_apply_on_a_big_run(ctx), _rollup_hour_in_a_big_day(ctx), _dashboard_90_vs_30(ctx)]


# --- apply on a run holding 1 M messages -------------------------------------------------------

_SEED_MESSAGES = """
INSERT INTO run_message (run_id, ordinal, event_id, message_uuid, message_type, message)
SELECT %(run)s, i, 'seed-' || (i / 5), 'seed-u-' || i, 'assistant',
       jsonb_build_object('type', 'assistant', 'uuid', 'seed-u-' || i, 'text', 'seeded ' || i)
FROM generate_series(1, %(n)s) AS i
"""
_SEED_EVENTS = """
INSERT INTO daemon_event (run_id, event_id, seq, payload_version, message_count, applied_count)
SELECT %(run)s, 'seed-' || i, NULL, 2, 5, 5 FROM generate_series(0, %(n)s / 5) AS i
"""


def seed_run_messages(url: str, run_id: str, messages: int) -> None:
    """`messages` stored messages (and their events) on the run, as if it had received them;
    `last_accepted_seq` stays NULL so the load's seqs 1, 2, ... are accepted."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_SEED_MESSAGES, {"run": run_id, "n": messages})
        conn.execute(_SEED_EVENTS, {"run": run_id, "n": messages})
        conn.execute(
            "UPDATE thread_run SET accepted_message_count = %(n)s,"
            " accepted_event_count = %(n)s / 5 + 1 WHERE run_id = %(run)s",
            {"run": run_id, "n": messages},
        )
        conn.execute("VACUUM ANALYZE run_message")
        conn.execute("VACUUM ANALYZE daemon_event")


def _one_connection(ctx: Context, run: RunHandle, seconds: float) -> WrkResult:
    service = ctx.stack.service
    assert service is not None
    return run_wrk(
        service.url + DAEMON_EVENT,
        mode="apply",
        path=DAEMON_EVENT,
        runs=[run],
        connections=1,
        seconds=seconds,
        phase=ctx.phase(),
        auth="",
        watch={},
    )


def _apply_on_a_big_run(ctx: Context) -> BenchResult:
    name, target = "growth: apply on a run with 1 M messages vs fresh", "≥ 0.9 x fresh run"
    messages = 200_000 if ctx.options.quick else 1_000_000
    seconds = max(2.0, ctx.options.seconds / 2)
    with ctx.stack.client() as client:
        big = create_run(client, f"growth-big-{ctx.phase()}")[0]
        fresh = [create_run(client, f"growth-fresh-{ctx.phase()}-{i}")[0] for i in range(2)]
    ctx.status(f"growth: seeding a run with {messages:,} messages")
    seed_run_messages(ctx.stack.db_url, big.run_id, messages)
    ctx.status("growth: apply on the big run / a fresh run, alternated twice")
    on_big: list[WrkResult] = []
    on_fresh: list[WrkResult] = []
    for i in range(2):
        on_fresh.append(_one_connection(ctx, fresh[i], seconds))
        on_big.append(_one_connection(ctx, big, seconds))
    best_big = max(on_big, key=lambda r: r.rps)
    best_fresh = max(on_fresh, key=lambda r: r.rps)
    ratio = best_big.rps / best_fresh.rps if best_fresh.rps else None
    with psycopg.connect(ctx.stack.db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT accepted_message_count FROM thread_run WHERE run_id = %s", (big.run_id,)
        ).fetchone()
    held = int(row[0]) if row else 0
    return BenchResult(
        name=name,
        metric="envelopes/s (1 connection)",
        value=best_big.rps,
        ceiling_name="fresh run",
        ceiling=best_fresh.rps,
        ratio=ratio,
        target=target,
        met=judge(ratio, ">=", 0.9) if held > messages else False,
        details={
            "seededMessages": messages,
            "messagesAfter": held,
            "big": [r.as_dict() for r in on_big],
            "fresh": [r.as_dict() for r in on_fresh],
            "note": f"{best_big.rps:,.0f} vs {best_fresh.rps:,.0f} envelopes/s; p50 "
            f"{best_big.p50_ms:.2f} vs {best_fresh.p50_ms:.2f} ms; the run holds {held:,} messages",
        },
    )


# --- the rollup of one hour in a big day -------------------------------------------------------


def seed_day_around_hour(url: str, day: date, hour: int, day_rows: int, hour_rows: int) -> None:
    """`hour_rows` rows in [hour, hour + 1) and `day_rows - hour_rows` in the rest of the day,
    inserted in time order (as the service writes them)."""
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rest = day_rows - hour_rows
    before = rest * hour // 23
    segments = [
        (lo, hour * _HOUR_US, before),
        (lo + timedelta(hours=hour), _HOUR_US, hour_rows),
        (lo + timedelta(hours=hour + 1), (23 - hour) * _HOUR_US, rest - before),
    ]
    seed_segments(url, day, segments, vacuum=True)


def _time_hour_rollup(ctx: Context, url: str, hour_start: datetime, tag: str) -> tuple[float, int]:
    from terragon_ingest.archive import repository
    from terragon_ingest.archive.rollup import rollup

    root = ctx.workdir / f"growth-archive-{tag}"
    with repository.connect(url) as conn:
        conn.execute(
            "INSERT INTO archive_watermark (dataset, watermark) VALUES"
            " ('quarantine', %(h)s), ('preview_event', %(end)s)"
            " ON CONFLICT (dataset) DO UPDATE SET watermark = excluded.watermark",
            {"h": hour_start, "end": hour_start + timedelta(hours=1)},
        )
        conn.commit()
        t0 = time.perf_counter()
        result = rollup(conn, root, settle_seconds=0, until=hour_start + timedelta(hours=1))
        elapsed = time.perf_counter() - t0
    return elapsed, result.rows.get("quarantine", 0)


def _rollup_hour_in_a_big_day(ctx: Context) -> BenchResult:
    name, target = "growth: rollup of one hour, 5 M-row day vs 100 k", "≤ 2 x"
    big_rows = 1_000_000 if ctx.options.quick else 5_000_000
    small_rows, hour_rows, hour = 100_000, 4_000, 12
    day = datetime.now(UTC).date() - timedelta(days=2)
    hour_start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    urls = {}
    for tag, rows in (("small", small_rows), ("big", big_rows)):
        ctx.status(f"growth: seeding a {rows:,}-row day")
        urls[tag] = ctx.stack.fresh_database(f"bench_growth_{tag}")
        seed_day_around_hour(urls[tag], day, hour, rows, hour_rows)
    timings: dict[str, list[float]] = {"small": [], "big": []}
    copied: dict[str, int] = {}
    for _ in range(3):  # alternated; the best of each
        for tag in ("small", "big"):
            ctx.status(f"growth: rollup of one hour ({tag} day)")
            elapsed, rows = _time_hour_rollup(ctx, urls[tag], hour_start, tag)
            timings[tag].append(elapsed)
            copied[tag] = rows
    small_s, big_s = min(timings["small"]), min(timings["big"])
    ratio = big_s / small_s if small_s else None
    same = copied.get("small") == copied.get("big") == hour_rows
    return BenchResult(
        name=name,
        metric="s",
        value=big_s,
        ceiling_name=f"{small_rows // 1000} k-row day",
        ceiling=small_s,
        ratio=ratio,
        target=target,
        met=bool(judge(ratio, "<=", 2.0)) and same,
        details={
            "bigDayRows": big_rows,
            "smallDayRows": small_rows,
            "hourRows": copied,
            "timings": {k: [round(t, 4) for t in v] for k, v in timings.items()},
            "note": f"{hour_rows:,} rows of one hour in {big_s:.3f} s ({big_rows:,}-row day) vs "
            f"{small_s:.3f} s ({small_rows:,}-row day); rows copied {copied}",
        },
    )


# --- the dashboard over 90 vs 30 days -----------------------------------------------------------


def _dashboard_run(ctx: Context, days: int, repos: int) -> tuple[float, int, bool]:
    root = ctx.workdir / f"growth-dashboard-{days}d"
    ctx.status(f"growth: generating {days} days x {repos} repos")
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    generate_archive(root, last_day=last_day, days=days, repos=repos, rows_per_minute=25)
    runs = timed_runs(ctx, root, f"growth: dashboard {days} days")
    return runs.best, runs.charts, runs.failed


def _dashboard_90_vs_30(ctx: Context) -> BenchResult:
    name, target = "growth: dashboard run, 90 days vs 30", "≤ 1.5 x"
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        return BenchResult.skip(name, "s", f"streamlit missing ({exc})", target)
    long_days, short_days, repos = (30, 10, 200) if ctx.options.quick else (90, 30, 1000)
    short_s, short_charts, short_failed = _dashboard_run(ctx, short_days, repos)
    long_s, long_charts, long_failed = _dashboard_run(ctx, long_days, repos)
    ratio = long_s / short_s if short_s else None
    ok = not (short_failed or long_failed) and short_charts == long_charts > 0
    return BenchResult(
        name=name,
        metric="s",
        value=long_s,
        ceiling_name=f"{short_days} days",
        ceiling=short_s,
        ratio=ratio,
        target=target,
        met=bool(judge(ratio, "<=", 1.5)) and ok,
        details={
            "repos": repos,
            "charts": [short_charts, long_charts],
            "note": f"best of {TIMED_RUNS} script runs: {long_s:.2f} s over {long_days} days vs "
            f"{short_s:.2f} s over {short_days} days ({repos} repos)",
        },
    )
