"""The archive's files: where each slice lives and how it is written (core's `archive` module
describes the layout). Every write goes to a temporary file that is renamed into place, so a
reader sees the old file or the new one, never half of one; a rerun overwrites, never appends.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from terragon_core import (
    AGGREGATE_DIMENSIONS,
    ARCHIVE_COLUMNS,
    ArchiveDataset,
    archive_view_sql,
)

if TYPE_CHECKING:
    import pyarrow as pa

TS_COLUMN = {
    ArchiveDataset.QUARANTINE_ROWS: "created_at",
    ArchiveDataset.PREVIEW_EVENTS: "ts_server",
}


def day_dir(root: Path, dataset: ArchiveDataset, day: date) -> Path:
    return root / dataset.value / f"day={day.isoformat()}"


def hour_file(root: Path, dataset: ArchiveDataset, hour: datetime) -> Path:
    return day_dir(root, dataset, hour.date()) / f"hour={hour:%H}.parquet"


def daily_file(root: Path, day: date) -> Path:
    return day_dir(root, ArchiveDataset.QUARANTINE_DAILY, day) / "daily.parquet"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC: the archive's writer and readers never share a database file."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_archive(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per dataset (what `terragon archive sql` queries)."""
    con = connect()
    for dataset in ArchiveDataset:
        has_files = any((root / dataset.value).glob("day=*/*.parquet"))
        con.execute(archive_view_sql(dataset, str(root) if has_files else None))
    return con


def _copy_atomic(con: duckdb.DuckDBPyConnection, select: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    con.execute(f"COPY ({select}) TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, target)


def merge_hour(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    dataset: ArchiveDataset,
    hour: datetime,
    keep_before: datetime,
    new_rows: pa.Table,
    new_until: datetime | None = None,
) -> Path:
    """Write an hour's file as (its rows before `keep_before`) + `new_rows` (only those with
    `keep_before <= ts < new_until` when `new_until` is given: `new_rows` may span several hours).

    Rows at or after `keep_before` in the old file were written by a run that crashed before it
    advanced the watermark; they are dropped and re-read from Postgres, so nothing is counted twice.
    """
    target = hour_file(root, dataset, hour)
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
        if target.exists():
            select = (
                f"SELECT {columns} FROM read_parquet({_quote(target)}) "
                f"WHERE {ts} < TIMESTAMPTZ '{keep_before.isoformat()}' UNION ALL {select}"
            )
        _copy_atomic(con, f"{select} ORDER BY {ts}", target)
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


def write_minutely(con: duckdb.DuckDBPyConnection, root: Path, hour: datetime) -> Path:
    """The hour's aggregates per minute, computed from the hour's rows file."""
    rows = hour_file(root, ArchiveDataset.QUARANTINE_ROWS, hour)
    target = hour_file(root, ArchiveDataset.QUARANTINE_MINUTELY, hour)
    _copy_atomic(
        con,
        f"SELECT date_trunc('minute', created_at) AS minute, {_DIMS}, {_MEASURES_FROM_ROWS} "
        f"FROM read_parquet({_quote(rows)}) GROUP BY ALL ORDER BY minute",
        target,
    )
    return target


def write_daily(con: duckdb.DuckDBPyConnection, root: Path, day: date) -> Path:
    """The day's aggregates, computed from the day's minutely files."""
    source = day_dir(root, ArchiveDataset.QUARANTINE_MINUTELY, day) / "*.parquet"
    target = daily_file(root, day)
    _copy_atomic(
        con,
        f"SELECT {_DIMS}, {_MEASURES_FROM_AGGREGATES} FROM read_parquet({_quote(source)}) "
        "GROUP BY ALL",
        target,
    )
    return target
