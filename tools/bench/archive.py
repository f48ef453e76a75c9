"""Archive benchmarks on real quarantine rows:

- rollup: `terragon_ingest.archive.rollup.rollup` (Postgres → Parquet archive, hour by hour, with
  aggregates) in rows/s vs a plain Arrow copy of the same rows (one `COPY … TO STDOUT (FORMAT
  csv)` → `pyarrow.csv` → one Parquet file);
- purge: `terragon_ingest.archive.retention.purge` of a sealed day of 1 M rows vs the bare
  `DROP TABLE` of an identical 1 M-row partition (and vs a day of 10 k rows); `--quick` uses
  100 k for the large days.

Each uses a database of its own (rollup watermarks are per database).
"""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import psycopg.sql

from terragon_core import ARCHIVE_COLUMNS, ArchiveDataset
from tools.bench.context import Context
from tools.bench.report import BenchResult, judge

ROLLUP_TARGET = "≥ 0.5 x plain Arrow copy"
PURGE_TARGET = "1 M-row day ≤ 1.5 x bare DROP TABLE"

_SEED = """
INSERT INTO daemon_event_quarantine (
    created_at, thread_id, thread_chat_id, run_id, active_run_id, reason, payload_version,
    payload_hash, payload_size, payload_prefix_2k, repo_full_name, user_id, sandbox_provider,
    event_id, seq, trace_id, strict)
SELECT %(start)s::timestamptz + (i::bigint * %(step)s::bigint) * interval '1 microsecond',
       't-' || (i %% 500), 'chat-1', 'run-' || (i %% 500), 'run-' || (i %% 500),
       (ARRAY['missing_run_id','mismatch','legacy_mode','payload_version_mismatch',
              'missing_end_sha','invalid_envelope'])[1 + i %% 6],
       2, md5(i::text), 700 + i %% 3000,
       '{"threadId":"t-' || (i %% 500) || '","messages":[' || repeat('x', 160) || ']}',
       'acme/repo-' || (i %% 7), 'user-' || (i %% 13),
       (ARRAY['docker','e2b','daytona','local','manual'])[1 + i %% 5],
       'e-' || i, i, md5((i * 7)::text), i %% 2 = 0
FROM generate_series(0, %(n)s - 1) AS i
"""


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def seed_day(url: str, day: date, rows: int) -> None:
    """`rows` quarantine rows spread over `day`, in the day's own partition."""
    seed_segments(url, day, [(_day_start(day), 86_399_000_000, rows)])


def seed_segments(
    url: str, day: date, segments: list[tuple[datetime, int, int]], *, vacuum: bool = False
) -> None:
    """Quarantine rows of `day`, in the day's own partition, segment by segment in time order
    (as the service writes them): each `(start, span in µs, rows)` spreads its rows evenly."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT terragon_ensure_day_partitions('daemon_event_quarantine'::regclass, %s, 1)",
            (day,),
        )
        for start, span_us, rows in segments:
            if rows > 0:
                step = max(1, span_us // rows)
                conn.execute(_SEED, {"start": start, "step": step, "n": rows})
        conn.execute(f"{'VACUUM ' if vacuum else ''}ANALYZE daemon_event_quarantine")


def plain_copy(url: str, day: date, target: Path) -> int:
    """The ceiling: the same rows, one COPY into Arrow, one Parquet file."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    lo = _day_start(day)
    buffer = io.BytesIO()
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        # The archive's columns, each as stored (the rollup converts some: that is its cost).
        columns = psycopg.sql.SQL(", ").join(
            psycopg.sql.SQL("id::text") if name == "id" else psycopg.sql.Identifier(name)
            for name, _ in ARCHIVE_COLUMNS[ArchiveDataset.QUARANTINE_ROWS]
        )
        query = psycopg.sql.SQL(
            "COPY (SELECT {} FROM daemon_event_quarantine"
            " WHERE created_at >= %s AND created_at < %s) TO STDOUT (FORMAT csv)"
        ).format(columns)
        with cur.copy(query, (lo, lo + timedelta(days=1))) as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
    )
    pq.write_table(table, target)
    return table.num_rows


def bench_rollup(ctx: Context) -> list[BenchResult]:
    try:
        from terragon_ingest.archive import repository
        from terragon_ingest.archive.rollup import rollup
    except ImportError as exc:
        return [BenchResult.skip("rollup", "rows/s", f"archive rollup not landed ({exc})")]
    rows = 100_000 if ctx.options.quick else 1_000_000
    url = ctx.stack.fresh_database("bench_rollup")
    day = datetime.now(UTC).date() - timedelta(days=1)
    ctx.status(f"rollup: seeding {rows:,} quarantine rows")
    seed_day(url, day, rows)
    root = ctx.workdir / "archive-rollup"
    ctx.status("rollup: plain Arrow copy (ceiling)")
    t0 = time.perf_counter()
    copied = plain_copy(url, day, ctx.workdir / "plain.parquet")
    plain_s = time.perf_counter() - t0
    ctx.status("rollup: terragon archive rollup")
    with repository.connect(url) as conn:
        t0 = time.perf_counter()
        result = rollup(conn, root, settle_seconds=0)
        rollup_s = time.perf_counter() - t0
    rolled = sum(result.rows.values())
    value = rolled / rollup_s
    ceiling = copied / plain_s
    ratio = value / ceiling
    return [
        BenchResult(
            name="archive rollup",
            metric="rows/s",
            value=value,
            ceiling_name="plain Arrow copy",
            ceiling=ceiling,
            ratio=ratio,
            target=ROLLUP_TARGET,
            met=judge(ratio, ">=", 0.5),
            details={
                "rows": rows,
                "rolledRows": rolled,
                "rollupSeconds": round(rollup_s, 3),
                "plainSeconds": round(plain_s, 3),
                "note": f"{rolled:,} rows in {rollup_s:.2f} s (24 hour files + aggregates) vs "
                f"{copied:,} rows in {plain_s:.2f} s",
            },
        )
    ]


def bare_drop(url: str, day: date) -> float:
    """The physical operation alone: `DROP TABLE` of the day's partition, in seconds."""
    name = f"daemon_event_quarantine_p{day:%Y%m%d}"
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(name)))
        return time.perf_counter() - t0


def bench_purge(ctx: Context) -> list[BenchResult]:
    """Retention's purge of a 1 M-row day against the bare `DROP TABLE` of an identical 1 M-row
    partition, in the same run (and against a 10 k-row day, as before). The three days are seeded
    alike and rolled up together, so their pages are equally warm; the days are sealed (counted)
    first, as the retention run after the rollup left them would have done, and that one-off
    count is reported beside the purge."""
    try:
        from terragon_ingest.archive import repository
        from terragon_ingest.archive.retention import purge, seal_closed_days
        from terragon_ingest.archive.rollup import rollup
        from terragon_ingest.telemetry import Metrics
    except ImportError as exc:
        return [BenchResult.skip("purge", "s", f"retention not landed ({exc})", PURGE_TARGET)]
    big = 100_000 if ctx.options.quick else 1_000_000
    small = 10_000
    url = ctx.stack.fresh_database("bench_purge")
    today = datetime.now(UTC).date()
    small_day, big_day = today - timedelta(days=45), today - timedelta(days=44)
    bare_day = today - timedelta(days=43)  # newer than big_day: its purge leaves it alone
    ctx.status(f"purge: seeding {small:,} + {big:,} + {big:,} rows on three old days")
    seed_day(url, small_day, small)
    seed_day(url, big_day, big)
    seed_day(url, bare_day, big)
    # Quiescent tables on both sides: an autovacuum of the fresh partitions would hold a lock the
    # purge and the bare DROP wait on (until it is cancelled) at random moments.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) daemon_event_quarantine")
    root = ctx.workdir / "archive-purge"
    ctx.status("purge: rolling the days into the archive first")
    with repository.connect(url) as conn:
        rollup(conn, root, settle_seconds=0)

    async def seal() -> tuple[float, int]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            sealed = await seal_closed_days(conn, root)
            return time.perf_counter() - t0, sum(1 for s in sealed if s.problem is None)

    async def timed(day: date) -> tuple[float, int, bool, bool]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            plans = await purge(
                conn,
                archive_root=root,
                store=None,
                metrics=Metrics(),
                today=day + timedelta(days=31),
            )
            elapsed = time.perf_counter() - t0
        purged = [p for p in plans if p.purged]
        return (
            elapsed,
            sum(p.rows for p in purged),
            all(p.partition for p in purged),
            all(p.sealed for p in purged),
        )

    ctx.status("purge: sealing the archived days (the one exact count per day)")
    seal_s, sealed_days = asyncio.run(seal())
    ctx.status("purge: the 10 k-row day")
    small_s, small_rows, small_part, small_sealed = asyncio.run(timed(small_day))
    ctx.status(f"purge: the {big:,}-row day")
    big_s, big_rows, big_part, big_sealed = asyncio.run(timed(big_day))
    ctx.status(f"purge: bare DROP TABLE of an identical {big:,}-row partition")
    bare_s = bare_drop(url, bare_day)
    ratio = big_s / bare_s if bare_s else None
    ok = small_rows == small and big_rows == big
    return [
        BenchResult(
            name=f"purge ({big // 1000:,} k-row day vs bare DROP TABLE)",
            metric="s",
            value=big_s,
            ceiling_name="bare DROP TABLE",
            ceiling=bare_s,
            ratio=ratio,
            target=PURGE_TARGET,
            met=bool(judge(ratio, "<=", 1.5)) and ok,
            details={
                "smallRowsPurged": small_rows,
                "bigRowsPurged": big_rows,
                "smallDaySeconds": round(small_s, 4),
                "bareDropSeconds": round(bare_s, 4),
                "sealSeconds": round(seal_s, 3),
                "sealedDays": sealed_days,
                "partitionDrop": small_part and big_part,
                "note": f"{big_rows:,} rows in {big_s:.3f} s vs bare DROP TABLE of {big:,} rows "
                f"in {bare_s:.3f} s; 10 k-row day {small_s:.3f} s ({big_s / small_s:.2f} x); "
                f"sealed before (one exact count per day, at archive time): {sealed_days} days "
                f"in {seal_s:.2f} s (partition drop: {small_part and big_part}, "
                f"sealed: {small_sealed and big_sealed})",
            },
        )
    ]
