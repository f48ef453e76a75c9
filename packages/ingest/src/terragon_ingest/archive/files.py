"""The archive's files: where each slice lives and how it is written (core's `archive` module
describes the layout). Every write goes to a temporary file that is then published whole (renamed
into place, or uploaded to its final key: `location.py`), so a reader sees the old file or the new
one, never half of one; a rerun overwrites, never appends.

Paths here are relative to the archive's root (`<dataset>/day=YYYY-MM-DD/hour=HH.parquet`), the
same under a local directory and under `s3://bucket/prefix`.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from terragon_core import AGGREGATE_DIMENSIONS, ARCHIVE_COLUMNS, COMPACT_FILE, ArchiveDataset
from terragon_ingest.archive.location import ArchiveLocation, as_location, connect, open_archive

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "COMPACTED",
    "TS_COLUMN",
    "compact_day",
    "connect",
    "daily_file",
    "day_dir",
    "hour_file",
    "hours_with_rows",
    "merge_hour",
    "open_archive",
    "write_daily",
    "write_minutely",
]

TS_COLUMN = {
    ArchiveDataset.QUARANTINE_ROWS: "created_at",
    ArchiveDataset.PREVIEW_EVENTS: "ts_server",
    ArchiveDataset.QUARANTINE_MINUTELY: "minute",
}
COMPACTED = (
    ArchiveDataset.QUARANTINE_ROWS,
    ArchiveDataset.QUARANTINE_MINUTELY,
    ArchiveDataset.PREVIEW_EVENTS,
)
"""The datasets whose closed days are compacted into one file (the daily one is one already)."""


def day_dir(dataset: ArchiveDataset, day: date) -> str:
    return f"{dataset.value}/day={day.isoformat()}"


def hour_file(dataset: ArchiveDataset, hour: datetime) -> str:
    return f"{day_dir(dataset, hour.date())}/hour={hour:%H}.parquet"


def archived_rows(root: ArchiveLocation, dataset: ArchiveDataset, day: date) -> int:
    """The rows the archive holds of `day` in `dataset`, from the Parquet footers alone."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(path).num_rows for path in root.local_copies(day_dir(dataset, day)))


def compact_file(dataset: ArchiveDataset, day: date) -> str:
    return f"{day_dir(dataset, day)}/{COMPACT_FILE}"


def compact_day(
    con: duckdb.DuckDBPyConnection,
    root: Path | ArchiveLocation,
    dataset: ArchiveDataset,
    day: date,
    *,
    rebuilt: bool = False,
) -> str | None:
    """Merge a closed day's hour files into its `day.parquet`, then delete them. Returns the file
    written (None: no hour file, nothing to do).

    Readers take `day.parquet` alone once it exists (`terragon_core.live_files`), so the hour
    files left beside it by a compaction cut short count once, and the next run finishes the job
    (the hour files still hold the whole day: `day.parquet` was made from them). With `rebuilt`
    (a day just rewritten from Postgres), a compacted day with no hour file left is replaced by
    an empty one: PostgreSQL held no row of it."""
    where = as_location(root)
    hours = where.hour_copies(day_dir(dataset, day))
    target = compact_file(dataset, day)
    columns = ", ".join(name for name, _ in ARCHIVE_COLUMNS[dataset])
    if hours:
        listed = "[" + ", ".join(_quote(path) for path in hours) + "]"
        select = f"SELECT {columns} FROM read_parquet({listed}) ORDER BY {TS_COLUMN[dataset]}"
    elif rebuilt and where.exists(target):
        typed = ", ".join(
            f"CAST(NULL AS {kind}) AS {name}" for name, kind in ARCHIVE_COLUMNS[dataset]
        )
        select = f"SELECT {typed} WHERE false"
    else:
        return None
    _copy_atomic(con, select, where, target)
    for path in hours:
        where.delete(f"{day_dir(dataset, day)}/{path.name}")
    return target


def daily_file(day: date) -> str:
    return f"{day_dir(ArchiveDataset.QUARANTINE_DAILY, day)}/daily.parquet"


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _copy_atomic(
    con: duckdb.DuckDBPyConnection, select: str, where: ArchiveLocation, target: str
) -> None:
    with where.publishing(target) as tmp:
        con.execute(f"COPY ({select}) TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)")


def merge_hour(
    con: duckdb.DuckDBPyConnection,
    root: Path | ArchiveLocation,
    dataset: ArchiveDataset,
    hour: datetime,
    keep_before: datetime,
    new_rows: pa.Table,
    new_until: datetime | None = None,
) -> str:
    """Write an hour's file as (its rows before `keep_before`) + `new_rows` (only those with
    `keep_before <= ts < new_until` when `new_until` is given: `new_rows` may span several hours).

    Rows at or after `keep_before` in the old file were written by a run that crashed before it
    advanced the watermark; they are dropped and re-read from Postgres, so nothing is counted twice.
    """
    where = as_location(root)
    target = hour_file(dataset, hour)
    columns = ", ".join(name for name, _ in ARCHIVE_COLUMNS[dataset])
    con.register("new_rows", new_rows)
    try:
        ts = TS_COLUMN[dataset]
        select = f"SELECT {columns} FROM new_rows"
        if new_until is not None:
            select += (
                f" WHERE {ts} >= TIMESTAMPTZ '{keep_before.isoformat()}'"
                f" AND {ts} < TIMESTAMPTZ '{new_until.isoformat()}'"
            )
        if where.exists(target):
            select = (
                f"SELECT {columns} FROM read_parquet({_quote(where.local_copy(target))}) "
                f"WHERE {ts} < TIMESTAMPTZ '{keep_before.isoformat()}' UNION ALL {select}"
            )
        _copy_atomic(con, f"{select} ORDER BY {ts}", where, target)
    finally:
        con.unregister("new_rows")
    return target


def hours_with_rows(
    con: duckdb.DuckDBPyConnection, dataset: ArchiveDataset, rows: pa.Table
) -> set[datetime]:
    """The UTC hours `rows` has rows in."""
    if rows.num_rows == 0:
        return set()
    con.register("new_rows", rows)
    try:
        found = con.execute(
            f"SELECT DISTINCT date_trunc('hour', {TS_COLUMN[dataset]}) FROM new_rows"
        ).fetchall()
    finally:
        con.unregister("new_rows")
    return {r[0] for r in found}


_MEASURES_FROM_ROWS = (
    "count(*)::BIGINT AS quarantined, "
    "coalesce(sum(payload_size), 0)::BIGINT AS payload_bytes, "
    "count(payload_object_key)::BIGINT AS offloaded, "
    "count(*) FILTER (WHERE offload_skipped)::BIGINT AS offload_skipped"
)
_MEASURES_FROM_AGGREGATES = (
    "sum(quarantined)::BIGINT AS quarantined, sum(payload_bytes)::BIGINT AS payload_bytes, "
    "sum(offloaded)::BIGINT AS offloaded, sum(offload_skipped)::BIGINT AS offload_skipped"
)
_DIMS = ", ".join(AGGREGATE_DIMENSIONS)


def write_minutely(
    con: duckdb.DuckDBPyConnection, root: Path | ArchiveLocation, hour: datetime
) -> str:
    """The hour's aggregates per minute, computed from the hour's rows file."""
    where = as_location(root)
    rows = where.local_copy(hour_file(ArchiveDataset.QUARANTINE_ROWS, hour))
    target = hour_file(ArchiveDataset.QUARANTINE_MINUTELY, hour)
    _copy_atomic(
        con,
        f"SELECT date_trunc('minute', created_at) AS minute, {_DIMS}, {_MEASURES_FROM_ROWS} "
        f"FROM read_parquet({_quote(rows)}) GROUP BY ALL ORDER BY minute",
        where,
        target,
    )
    return target


def write_daily(con: duckdb.DuckDBPyConnection, root: Path | ArchiveLocation, day: date) -> str:
    """The day's aggregates, computed from the day's minutely files."""
    where = as_location(root)
    sources = where.local_copies(day_dir(ArchiveDataset.QUARANTINE_MINUTELY, day))
    target = daily_file(day)
    listed = "[" + ", ".join(_quote(path) for path in sources) + "]"
    _copy_atomic(
        con,
        f"SELECT {_DIMS}, {_MEASURES_FROM_AGGREGATES} FROM read_parquet({listed}) GROUP BY ALL",
        where,
        target,
    )
    return target
