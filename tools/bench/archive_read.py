"""Archive read path from a bucket: which way should DuckDB read Parquet from S3 on a machine
where its `httpfs` extension cannot be loaded (no internet)?

An archive in the rollup's layout (per day: 24 hourly minutely-aggregate files + one daily file;
30 days x 200 repos, `--quick`: 3 days x 50 repos) is uploaded to moto's S3 server
(`tools/s3_server.py`, started here on 127.0.0.1) with obstore, as the rollup publishes it. Then
the dashboard's script queries (`choices`, `trend` by repo, `top_offenders` over the whole range)
run on a fresh in-memory DuckDB, open included, best of 3, through:

- **pyarrow**: one listing, then pyarrow's `S3FileSystem` into Arrow datasets that DuckDB scans
  (`terragon_dashboard.source`, what the dashboard, `terragon archive sql` and retention use);
- **fsspec**: DuckDB's `register_filesystem` with obstore's fsspec adapter, `read_parquet` globs;
- **local**: the same files on local disk (reference: the cost of the network path itself).

The ratio is fsspec / pyarrow: above 1, the chosen pyarrow path is the faster one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from terragon_core import ArchiveDataset, archive_view_sql
from tools.bench.context import Context
from tools.bench.report import BenchResult
from tools.bench.synthetic_archive import generate_archive

TARGET = "(none: picks the read path; ratio > 1 = pyarrow faster)"


def _hourly_layout(source: Path, target: Path) -> int:
    """Rewrite the generated archive in the rollup's layout; returns the number of files."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    count = 0
    minutely = ArchiveDataset.QUARANTINE_MINUTELY.value
    days = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT day FROM read_parquet('{source}/{minutely}/*/*.parquet', "
            "hive_partitioning = true) ORDER BY 1"
        ).fetchall()
    ]
    for day in days:
        for dataset in ArchiveDataset:
            files = list((source / dataset.value / f"day={day}").glob("*.parquet"))
            if not files:
                continue
            out = target / dataset.value / f"day={day}"
            out.mkdir(parents=True, exist_ok=True)
            listed = "[" + ", ".join(f"'{f}'" for f in files) + "]"
            if dataset is ArchiveDataset.QUARANTINE_MINUTELY:
                for hour in range(24):
                    con.execute(
                        f"COPY (SELECT * EXCLUDE (day) FROM read_parquet({listed}, "
                        f"hive_partitioning = true) WHERE hour(minute) = {hour} ORDER BY minute) "
                        f"TO '{out}/hour={hour:02d}.parquet' (FORMAT parquet, COMPRESSION zstd)"
                    )
                    count += 1
            else:
                name = (
                    "daily.parquet"
                    if dataset is ArchiveDataset.QUARANTINE_DAILY
                    else "hour=12.parquet"
                )
                con.execute(
                    f"COPY (SELECT * EXCLUDE (day) FROM read_parquet({listed}, "
                    f"hive_partitioning = true)) TO '{out}/{name}' (FORMAT parquet, COMPRESSION zstd)"
                )
                count += 1
    con.close()
    return count


def _dashboard_queries(con: duckdb.DuckDBPyConnection) -> int:
    from terragon_dashboard import archive

    choice = archive.choices(con)
    assert choice.first_day and choice.last_day
    filters = archive.Filters(start=choice.first_day, end=choice.last_day)
    rows = len(archive.trend(con, filters, "repo"))
    rows += len(archive.top_offenders(con, filters, "repo"))
    return rows


def _fsspec_connection(
    url: str, endpoint: str, present: set[ArchiveDataset]
) -> duckdb.DuckDBPyConnection:
    from obstore.fsspec import FsspecStore

    class S3Fsspec(FsspecStore):
        protocol = "s3"  # fsspec strips the class's protocol from paths before globbing

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    fs = S3Fsspec("s3", config={"endpoint": endpoint}, client_options={"allow_http": True})
    con.register_filesystem(fs)
    for dataset in ArchiveDataset:  # a glob that matches nothing is an error: empty views
        con.execute(archive_view_sql(dataset, url if dataset in present else None))
    return con


def _best_of(runs: int, work: Callable[[], int]) -> tuple[float, int]:
    timings, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = work()
        timings.append(time.perf_counter() - started)
    return min(timings), rows


def bench_archive_read(ctx: Context) -> list[BenchResult]:
    import obstore

    from terragon_dashboard import archive
    from terragon_ingest.objects import open_store
    from terragon_ingest.settings import ObjectStoreSettings
    from tools.s3_server import start_bucket

    days, repos = (3, 50) if ctx.options.quick else (30, 200)
    workdir = Path(tempfile.mkdtemp(prefix="archive-read-", dir=ctx.workdir))
    ctx.status(f"archive-read: generating {days} days x {repos} repos in the rollup's layout")
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    generate_archive(workdir / "gen", last_day=last_day, days=days, repos=repos, rows_per_minute=5)
    local = workdir / "archive"
    files = _hourly_layout(workdir / "gen", local)
    size = sum(p.stat().st_size for p in local.rglob("*.parquet"))
    present = {d for d in ArchiveDataset if any((local / d.value).glob("day=*/*.parquet"))}

    ctx.status("archive-read: starting moto's S3 server")
    server, bucket = start_bucket(workdir)
    saved = {k: os.environ.get(k) for k in bucket.env()}
    os.environ.update(bucket.env())
    try:
        url = f"{bucket.url}/archive"
        store = open_store(url, ObjectStoreSettings())
        ctx.status(f"archive-read: uploading {files} files ({size / 1e6:.1f} MB)")
        for path in sorted(local.rglob("*.parquet")):
            obstore.put(store, str(path.relative_to(local)), path)

        def pyarrow_path() -> int:
            return _dashboard_queries(archive.open_archive(url))

        def fsspec_path() -> int:
            assert bucket.endpoint
            return _dashboard_queries(_fsspec_connection(url, bucket.endpoint, present))

        def local_path() -> int:
            return _dashboard_queries(archive.open_archive(local))

        measured = {}
        for name, work in (
            ("pyarrow", pyarrow_path),
            ("fsspec", fsspec_path),
            ("local", local_path),
        ):
            ctx.status(f"archive-read: {name} (best of 3)")
            measured[name] = _best_of(3, work)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    (pa_s, pa_rows), (fs_s, fs_rows), (local_s, local_rows) = (
        measured["pyarrow"],
        measured["fsspec"],
        measured["local"],
    )
    agree = pa_rows == fs_rows == local_rows
    return [
        BenchResult(
            name=f"archive read from S3 ({days} d x {repos} repos, {files} files)",
            metric="s",
            value=pa_s,
            ceiling_name="DuckDB over obstore's fsspec",
            ceiling=fs_s,
            ratio=fs_s / pa_s,
            target=TARGET,
            met=agree and pa_s <= fs_s,
            details={
                "note": (
                    f"dashboard queries, open included, best of 3: pyarrow S3FileSystem → Arrow "
                    f"datasets {pa_s:.2f} s, DuckDB + fsspec (obstore) {fs_s:.2f} s, local files "
                    f"{local_s:.2f} s; {size / 1e6:.1f} MB in {files} objects on moto's server; "
                    f"results {'agree' if agree else 'DIFFER'} ({pa_rows} rows)"
                ),
            },
        )
    ]
