"""Soak (`--soak SECONDS --rate 0.7 [--replicas N] [--s3]`): N replicas of the service (one
directly, several behind the balancing proxy) on a database of their own, the periodic jobs on
(every `TERRAGON_JOB_INTERVAL_SECONDS`: 30 s here, a quarter of a shorter soak, so the sweep, the rollup, retention
and the partitions run many times), the archive and the offloaded payloads on a moto S3 bucket
with `--s3`. Warm up, measure the apply maximum, then hold `rate` x that load in windows (wrk
paces each connection with `delay()`, steered window by window to the target rate), recording
each window's rate, p99, the replicas' RSS and the database's size against the rows written.

Targets (`verdicts`): last-window p99 <= 1.5 x the first's; RSS growth < 10 %; bytes per row of
the tables the load writes, last window <= 1.2 x the first; every job's slots between the soak's
start and end present once each and none failed."""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from tools.bench.context import Context
from tools.bench.ingest import DAEMON_EVENT, MISSING_ROUTE
from tools.bench.report import BenchResult
from tools.bench.stack import (
    create_runs,
    internal_client,
    proc_rss_bytes,
    process_tree,
    route_exists,
)
from tools.bench.wrk import run_wrk
from tools.replicas import Replicas, archive_bucket, shared_env

TARGET = "p99 drift <= 1.5 x; RSS growth < 10 %; bytes/row <= 1.2 x; every job slot ran"
P99_DRIFT_MAX = 1.5
RSS_GROWTH_MAX = 0.10
BYTES_PER_ROW_MAX = 1.2
JOB_INTERVAL_SECONDS = 30.0
WARM_SLOTS = 6
"""Slots the warm-up waits at most for the rollup to have run in every worker. Best effort: which
worker wins a slot is whose timer fires first, and an idle replica's one worker often wins them
all; when the bound is hit the report says so (per-process RSS in the JSON shows the steps)."""


def job_interval(soak_seconds: float) -> float:
    """The jobs' slot length: 30 s (60 slots of every job in a 30-minute soak, and a warm-up
    that sees the rollup in every worker within minutes), or a quarter of a soak shorter than
    2 minutes (at least 5 s), so even the short form sees every job run a few times."""
    return float(max(5, min(JOB_INTERVAL_SECONDS, soak_seconds // 4)))


SIDE_DELAY_MS = 3000
"""The quarantine side load's pace: ~20 oversized envelopes a minute, the default offload budget
of a repo (`TERRAGON_OFFLOADS_PER_REPO_PER_MINUTE`)."""
TABLES = ("daemon_event", "run_message", "thread_run")
"""What the apply path writes: its ledger and the messages (append-only), and the run rows it
updates (where dead tuples would pile up if autovacuum did not keep up)."""
BYTES_PER_ROW = (
    "bytes/row = on-disk size (heap + indexes + TOAST) of the tables the load writes ÷ their rows: "
    "flat for append-only tables, so a rise is space autovacuum did not let the load reuse (bloat)"
)


# ---- the verdicts (pure) ----------------------------------------------------------------------


def ratio(first: float, last: float) -> float | None:
    """last / first (the p99 drift, the bytes-per-row ratio); None without a first value."""
    return last / first if first else None


def growth(first: float, last: float) -> float:
    """Relative growth from first to last (0.1 = +10 %)."""
    return (last - first) / first if first else 0.0


def bytes_per_row(size: float, rows: float) -> float:
    return size / rows if rows else 0.0


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One `job_slot` row."""

    job: str
    slot_start: float
    """Epoch seconds."""
    finished: bool
    failed: bool | None
    claimed_by: str = ""
    """`host:pid` of the process that ran it."""


def expected_slots(interval: float, start: float, end: float) -> list[float]:
    """Every slot boundary (epoch seconds, aligned to the epoch as the scheduler does) strictly
    after `start` and at or before `end`."""
    first = math.floor(start / interval) + 1
    last = math.floor(end / interval)
    return [k * interval for k in range(first, last + 1)]


def slots_on_schedule(
    rows: list[SlotRow], jobs: list[str], interval: float, start: float, end: float
) -> dict[str, dict[str, Any]]:
    """For each job: its expected slots in (start, end], and which of them are missing, claimed
    more than once, failed, or never finished."""
    due = expected_slots(interval, start, end)
    out: dict[str, dict[str, Any]] = {}
    for job in jobs:
        mine = [r for r in rows if r.job == job]
        by_slot: dict[float, list[SlotRow]] = {}
        for row in mine:
            by_slot.setdefault(row.slot_start, []).append(row)
        out[job] = {
            "expected": len(due),
            "ran": sum(1 for s in due if s in by_slot),
            "missing": [s for s in due if s not in by_slot],
            "duplicated": [s for s in due if len(by_slot.get(s, [])) > 1],
            "failed": [s for s in due if any(r.failed for r in by_slot.get(s, []))],
            "unfinished": [s for s in due if any(not r.finished for r in by_slot.get(s, []))],
        }
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    met: bool
    line: str


ARCHIVE_SETTLE_SECONDS = 60
"""The rollup archives a minute once it ended this long ago (`TERRAGON_ARCHIVE_SETTLE_SECONDS`,
left at its default by the soak)."""


def memory_baseline(
    windows: list[dict[str, Any]], rollups: list[SlotRow], started: float, interval: float
) -> int:
    """The index of the window the memory growth is measured from: the first that ends after
    every process's first rollup that wrote Parquet, i.e. its first rollup slot after the side
    load's first minute was archivable (+ one interval for the run to end). That run is a one-off
    step of the process's RSS (DuckDB's and Arrow's buffers), not growth; which process wins a
    slot is a race, so it can come minutes into the soak. 0 when no process ran one."""
    archivable = (started // 60 + 1) * 60 + ARCHIVE_SETTLE_SECONDS
    first_runs: dict[str, float] = {}
    for row in sorted(rollups, key=lambda r: r.slot_start):
        if row.job == ROLLUP and row.finished and row.slot_start >= archivable:
            first_runs.setdefault(row.claimed_by, row.slot_start)
    if not first_runs:
        return 0
    stepped = max(first_runs.values()) + interval - started
    for index, window in enumerate(windows[:-1]):
        if window["endSeconds"] >= stepped:
            return index
    return 0


def verdicts(
    windows: list[dict[str, Any]], slots: dict[str, dict[str, Any]], baseline: int = 0
) -> list[Verdict]:
    """The soak's four targets from its first and last window (memory from window `baseline`:
    `memory_baseline`) and the job slots."""
    first, last = windows[0], windows[-1]
    drift = ratio(first["p99Ms"], last["p99Ms"])
    rss_from = windows[baseline]
    rss = growth(rss_from["rssBytes"], last["rssBytes"])
    bpr_first = bytes_per_row(first["tableBytes"], first["rows"])
    bpr_last = bytes_per_row(last["tableBytes"], last["rows"])
    bpr = ratio(bpr_first, bpr_last)
    written = last["rows"] - first["rows"]
    db_per_row = bytes_per_row(last["dbBytes"] - first["dbBytes"], written)
    bad = {
        job: {k: len(v) for k, v in s.items() if isinstance(v, list) and v}
        for job, s in slots.items()
    }
    bad = {job: problems for job, problems in bad.items() if problems}
    ran = ", ".join(f"{job} {s['ran']}/{s['expected']}" for job, s in slots.items())
    return [
        Verdict(
            "p99 drift",
            drift is not None and drift <= P99_DRIFT_MAX,
            f"p99 drift: {first['p99Ms']:.1f} → {last['p99Ms']:.1f} ms = "
            f"{'-' if drift is None else f'{drift:.2f}'} x (target ≤ {P99_DRIFT_MAX} x)",
        ),
        Verdict(
            "memory",
            rss < RSS_GROWTH_MAX,
            f"memory (every replica's process tree RSS, window {baseline + 1}, after every "
            f"process's first archiving rollup, → last): {rss_from['rssBytes'] / 2**20:.0f} → "
            f"{last['rssBytes'] / 2**20:.0f} MiB = {rss:+.1%} (target < {RSS_GROWTH_MAX:.0%}; "
            f"from window 1: {growth(first['rssBytes'], last['rssBytes']):+.1%})",
        ),
        Verdict(
            "bytes per row",
            bpr is not None and bpr <= BYTES_PER_ROW_MAX,
            f"bytes/row ({' + '.join(TABLES)}): {bpr_first:.0f} → {bpr_last:.0f} = "
            f"{'-' if bpr is None else f'{bpr:.2f}'} x (target ≤ {BYTES_PER_ROW_MAX} x); "
            f"database {first['dbBytes'] / 2**20:.0f} → {last['dbBytes'] / 2**20:.0f} MiB, "
            f"{db_per_row:.0f} B per row written since the first window ({written:,} rows)",
        ),
        Verdict(
            "job slots",
            bool(slots) and not bad and all(s["expected"] for s in slots.values()),
            f"job slots on schedule: {ran}"
            + (
                f"; problems {bad}"
                if bad
                else "; none missing, duplicated or failed"
                if any(s["expected"] for s in slots.values())
                else "; no slot boundary fell inside the soak"
            ),
        ),
    ]


def window_table(windows: list[dict[str, Any]]) -> list[str]:
    """The per-window table (plain text, printed and kept in the report)."""
    lines = [
        f"{'win':>3} {'end s':>5} {'env/s':>6} {'p99 ms':>6} {'err':>4} {'RSS MiB':>7} "
        f"{'rows':>9} {'tbl MiB':>7} {'B/row':>5} {'db MiB':>6} {'dead':>6}"
    ]
    for i, w in enumerate(windows, 1):
        lines.append(
            f"{i:>3} {w['endSeconds']:>5.0f} {w['rps']:>6.0f} {w['p99Ms']:>6.1f} "
            f"{w['errors']:>4} {w['rssBytes'] / 2**20:>7.0f} {w['rows']:>9,} "
            f"{w['tableBytes'] / 2**20:>7.1f} "
            f"{bytes_per_row(w['tableBytes'], w['rows']):>5.0f} {w['dbBytes'] / 2**20:>6.0f} "
            f"{w['deadRows']:>6,}"
        )
    return lines


# ---- the measurements ---------------------------------------------------------------------------


def db_sizes(url: str) -> dict[str, Any]:
    """Rows, on-disk bytes and dead tuples of `TABLES`, and the whole database's size."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = 0
        for table in TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            got = conn.execute(query).fetchone()
            rows += int(got[0]) if got else 0
        got = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0), "
            "coalesce(sum(n_dead_tup), 0), pg_database_size(current_database()) "
            "FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            (list(TABLES),),
        ).fetchone()
        assert got is not None
        return {
            "rows": rows,
            "tableBytes": int(got[0]),
            "deadRows": int(got[1]),
            "dbBytes": int(got[2]),
        }


def archive_state(url: str) -> dict[str, Any]:
    """The side load's quarantine rows, how many of their payloads went to the object store, and
    the rollup's quarantine watermark (it moves every minute while the rollup keeps up)."""
    with psycopg.connect(url, autocommit=True) as conn:
        got = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE payload_object_key IS NOT NULL), "
            "(SELECT watermark FROM archive_watermark WHERE dataset = 'quarantine') "
            "FROM daemon_event_quarantine"
        ).fetchone()
    assert got is not None
    return {
        "quarantined": int(got[0]),
        "offloaded": int(got[1]),
        "watermark": got[2].isoformat() if got[2] else None,
    }


def read_slots(url: str, since: float) -> list[SlotRow]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT job, slot_start, finished_at IS NOT NULL, failed, claimed_by FROM job_slot "
            "WHERE slot_start > to_timestamp(%s)",
            (since,),
        ).fetchall()
    return [SlotRow(job, ts.timestamp(), done, failed, by) for job, ts, done, failed, by in found]


ROLLUP = "archive_rollup"
"""The job whose first run in a process raises that process's RSS by a one-off step (DuckDB's
and Arrow's buffers; ~40-80 MiB measured), flat afterwards."""


def wait_for_first_runs(
    url: str, jobs: list[str], since: float, processes: int, timeout: float
) -> bool:
    """Until every job has finished one slot after `since` and each of the `processes` that run
    jobs (every worker of every replica) has run the rollup once: its one-off step belongs before
    the first window's memory figure, not in the soak's growth. False: `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in read_slots(url, since) if r.finished]
        rolled = {r.claimed_by for r in rows if r.job == ROLLUP}
        if {r.job for r in rows} >= set(jobs) and len(rolled) >= processes:
            return True
        time.sleep(2.0)  # polling the replicas' bookkeeping
    return False


def wait_for_slots(
    url: str, jobs: list[str], interval: float, start: float, end: float, timeout: float = 180.0
) -> dict[str, dict[str, Any]]:
    """The slot check once every due slot has a finished row (or `timeout` passed: a slot that
    started just before the end may still be running)."""
    deadline = time.monotonic() + timeout
    while True:
        slots = slots_on_schedule(read_slots(url, start), jobs, interval, start, end)
        settled = all(not s["missing"] and not s["unfinished"] for s in slots.values())
        if settled or time.monotonic() > deadline:
            return slots
        time.sleep(2.0)  # polling the replicas' bookkeeping


def bench_soak(ctx: Context) -> list[BenchResult]:
    options = ctx.options
    stack = ctx.stack
    total = options.soak_seconds or (30.0 if options.quick else 600.0)
    work = ctx.workdir / "soak"
    work.mkdir(parents=True, exist_ok=True)
    db_url = stack.fresh_database("soak")
    interval = float(stack.extra_env.get("TERRAGON_JOB_INTERVAL_SECONDS") or job_interval(total))
    previous = stack.service  # the replicas become `stack.service` in turn; put it back after
    s3_lines: list[str] = []
    try:
        with archive_bucket(options.s3) as s3_lines:
            shared = {
                **shared_env(work),
                "DATABASE_URL": db_url,
                "TERRAGON_JOB_INTERVAL_SECONDS": f"{interval:g}",
            }
            ctx.status(f"soak: starting {options.replicas} replica(s)")
            replicas = Replicas(stack, work, max(1, options.replicas), shared)
            replicas.start()
            try:
                result = _soak(ctx, replicas, db_url, interval, total)
            finally:
                replicas.stop()
    finally:
        stack.service = previous
    if result.details:
        result.details["s3"] = s3_lines
        result.details["lines"] += s3_lines
    return [result]


def _soak(
    ctx: Context, replicas: Replicas, db_url: str, interval: float, total: float
) -> BenchResult:
    from terragon_ingest.lifecycle.jobs import periodic_jobs

    options = ctx.options
    replicas_started = time.time() - 1
    url = replicas.url
    if not route_exists(replicas.services[0].url, "post", DAEMON_EVENT):
        return BenchResult.skip("soak", "p99 drift", MISSING_ROUTE, TARGET)
    n = options.connections

    def load(seconds: float, delay_ms: int, side: bool = False) -> tuple[float, float, int]:
        with internal_client(url) as client:
            runs = create_runs(client, f"soak-{ctx.phase()}", n)
            side_runs = create_runs(client, f"soak-q-{ctx.phase()}", 1) if side else []
        with ThreadPoolExecutor(1) as pool:
            # The side load: oversized envelopes for a run that is not the thread's active one,
            # so quarantine rows (archived by the rollup every minute) and offloaded payloads
            # (the object store) keep coming while the soak runs.
            quarantine = (
                pool.submit(
                    run_wrk,
                    url + DAEMON_EVENT,
                    mode="quarantine",
                    path=DAEMON_EVENT,
                    runs=side_runs,
                    connections=1,
                    seconds=seconds,
                    phase=ctx.phase(),
                    delay_ms=SIDE_DELAY_MS,
                    big=True,
                )
                if side
                else None
            )
            result = run_wrk(
                url + DAEMON_EVENT,
                mode="apply",
                path=DAEMON_EVENT,
                runs=runs,
                connections=n,
                seconds=seconds,
                phase=ctx.phase(),
                delay_ms=delay_ms,
            )
            errors = sum(result.errors.values())
            if quarantine is not None:
                errors += sum(quarantine.result().errors.values())
        return result.rps, result.p99_ms, errors

    # Before the maximum is measured: the steady state has every worker's rollup behind it.
    jobs = [job.name for job in periodic_jobs()]
    processes = replicas.count * ctx.stack.workers
    ctx.status(f"soak: waiting for every job's first run, the rollup's in all {processes} workers")
    jobs_warm = wait_for_first_runs(
        db_url, jobs, replicas_started, processes, timeout=WARM_SLOTS * interval + 30
    )
    ctx.status("soak: warming up, then measuring the maximum")
    load(5.0, 0)  # a cold service and empty tables under-state the maximum
    max_rps, _, _ = load(min(10.0, options.seconds), 0)
    target_rps = max(1.0, options.soak_rate * max_rps)
    # wrk has no rate flag: each connection waits `delay` after each answer, so the rate is
    # n / (latency + delay). Latency falls as load falls, so the delay is steered: calibrated in
    # short windows first, then corrected after every soak window (the database keeps growing).
    delay_ms = max(1, int((n / target_rps - n / max_rps) * 1000))

    def steer(delay: int, rps: float) -> int:
        return max(1, int(delay + (n / target_rps - n / max(rps, 1.0)) * 1000))

    for attempt in range(4):
        ctx.status(f"soak: calibrating the pace ({attempt + 1}/4, delay {delay_ms} ms)")
        rps, _, _ = load(5.0, delay_ms)
        if abs(rps - target_rps) <= 0.05 * target_rps:
            break
        delay_ms = steer(delay_ms, rps)
    window = 60.0 if total >= 180 else max(5.0, total / 5)
    windows: list[dict[str, Any]] = []
    elapsed = 0.0
    started = time.time()
    while elapsed + 1 <= total:
        seconds = min(window, total - elapsed)
        ctx.status(f"soak: window {len(windows) + 1} ({elapsed:.0f}/{total:.0f} s)")
        rps, p99, errors = load(seconds, delay_ms, side=True)
        rss = {p: proc_rss_bytes(p) for pid in replicas.pids() for p in process_tree(pid)}
        elapsed += seconds
        windows.append(
            {
                "endSeconds": round(time.time() - started, 1),
                "rps": rps,
                "p99Ms": p99,
                "errors": errors,
                "delayMs": delay_ms,
                "rssBytes": sum(rss.values()),
                "rssByProcess": rss,
                **db_sizes(db_url),
            }
        )
        delay_ms = steer(delay_ms, rps)
    ended = time.time()
    ctx.status("soak: waiting for the last job slots to finish")
    slots = wait_for_slots(db_url, jobs, interval, started, ended)
    baseline = memory_baseline(windows, read_slots(db_url, started), started, interval)
    checks = verdicts(windows, slots, baseline)
    archived = archive_state(db_url)
    run_by = dict(Counter(r.claimed_by for r in read_slots(db_url, started)))
    held = sum(w["rps"] for w in windows) / len(windows)
    first, last = windows[0], windows[-1]
    drift = ratio(first["p99Ms"], last["p99Ms"])
    lines = [
        f"soak {total:.0f} s, {replicas.count} replica(s)"
        f"{' behind the proxy' if replicas.proxy else ''}, jobs every {interval:g} s, "
        f"max {max_rps:,.0f} env/s, target {target_rps:,.0f} ({options.soak_rate:.0%}), "
        f"held {held:,.0f} on average",
        *window_table(windows),
        BYTES_PER_ROW,
        f"side load: {archived['quarantined']:,} quarantine rows "
        f"({archived['offloaded']:,} payloads offloaded); archive watermark "
        f"{archived['watermark'] or 'none'}",
        *[f"{'PASS' if c.met else 'FAIL'} {c.line}" for c in checks],
    ]
    lines.append(
        f"job slots run by {len(run_by)} process(es): {sorted(run_by.values(), reverse=True)}"
        + (
            ""
            if jobs_warm
            else f"; not every job (the rollup in each of the {processes} workers) had run "
            f"before the first window (waited {WARM_SLOTS} slots): RSS steps may follow"
        )
    )
    if replicas.proxy is not None:
        lines.append(
            f"proxy: connections per replica "
            f"{[replicas.proxy.per_upstream.get(p, 0) for p in replicas.ports]}"
        )
    return BenchResult(
        name=f"soak {total:.0f} s at {options.soak_rate:.0%} of max, {replicas.count} replica(s)",
        metric="x p99 drift",
        value=drift,
        ceiling_name="first window p99",
        ceiling=first["p99Ms"],
        ratio=drift,
        target=TARGET,
        met=all(c.met for c in checks),
        details={
            "maxRps": round(max_rps, 1),
            "targetRps": round(target_rps, 1),
            "heldRps": round(held, 1),
            "replicas": replicas.count,
            "s3": [],
            "jobIntervalSeconds": interval,
            "startedAt": datetime.fromtimestamp(started).astimezone().isoformat(),
            "endedAt": datetime.fromtimestamp(ended).astimezone().isoformat(),
            "windows": windows,
            "verdicts": {c.name: {"met": c.met, "line": c.line} for c in checks},
            "jobSlots": slots,
            "memoryBaselineWindow": baseline + 1,
            "jobsRanBeforeFirstWindow": jobs_warm,
            "slotsRunBy": run_by,
            "archive": archived,
            "bytesPerRow": BYTES_PER_ROW,
            "lines": lines,
            "note": "; ".join(f"{c.name} {'met' if c.met else 'NOT met'}" for c in checks),
        },
    )
