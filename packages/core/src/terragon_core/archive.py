"""The archive's layout: what the rollup writes and what analysts, the dashboard and retention read.

Parquet, partitioned by UTC day in hive style so any engine can read it:

    <archive>/quarantine_rows/day=YYYY-MM-DD/hour=HH.parquet      rows, without full payloads
    <archive>/quarantine_minutely/day=YYYY-MM-DD/hour=HH.parquet  aggregates per minute
    <archive>/quarantine_daily/day=YYYY-MM-DD/daily.parquet       aggregates per day
    <archive>/preview_events/day=YYYY-MM-DD/hour=HH.parquet       preview events
    <archive>/<dataset>/day=YYYY-MM-DD/day.parquet                a closed day, compacted

Once a day has closed, the rollup compacts its hour files of each dataset into one `day.parquet`
(`COMPACT_FILE`) and deletes them: on object storage a reader then pays one request per day, not
24. A day directory holding `day.parquet` is that file alone; readers list the files and keep the
live ones (`live_files`), so hour files still beside it (a compaction cut short) never count twice.

Aggregates are keyed by (reason, strict, repo, user, provider). Every file is written as a
temporary file and renamed into place, so readers never see half a file. Readers open an
in-memory DuckDB with the views below (`archive_view_sql`); the column `day` comes from the path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from terragon_core.constants import PREVIEW_EVENT_RETENTION_DAYS, QUARANTINE_RETENTION_DAYS
from terragon_core.enums import QuarantineReason
from terragon_core.metrics import EVENT_PURGE_EVENT, QUARANTINE_PURGE_EVENT, MetricName
from terragon_core.quarantine import NOT_ARCHIVED, QuarantineRecord, sql_columns


class ArchiveDataset(StrEnum):
    """A directory of the archive, and the name of the view that reads it."""

    QUARANTINE_ROWS = "quarantine_rows"
    QUARANTINE_MINUTELY = "quarantine_minutely"
    QUARANTINE_DAILY = "quarantine_daily"
    PREVIEW_EVENTS = "preview_events"


@dataclass(frozen=True, slots=True)
class RetainedTable:
    """A day-partitioned PostgreSQL table: the rollup archives its rows, and retention drops a day
    once the archive holds it (the only purge of its rows)."""

    dataset: str
    """Its name in `archive_watermark.dataset` and `archive_day_seal.dataset` (a CHECK there)."""
    table: str
    archive: ArchiveDataset
    """The dataset its rows are archived into."""
    days: int
    """Days kept in PostgreSQL."""
    event: str
    """The purge's observability event."""
    metric: MetricName
    """The purge's counter."""
    breakdown: str
    """The purge event's property that carries the rows per group's first key."""


QUARANTINE_TABLE: Final = RetainedTable(
    "quarantine",
    "daemon_event_quarantine",
    ArchiveDataset.QUARANTINE_ROWS,
    QUARANTINE_RETENTION_DAYS,
    QUARANTINE_PURGE_EVENT,
    MetricName.QUARANTINE_PURGE,
    "byReason",
)
PREVIEW_EVENT_TABLE: Final = RetainedTable(
    "preview_event",
    "preview_event",
    ArchiveDataset.PREVIEW_EVENTS,
    PREVIEW_EVENT_RETENTION_DAYS,
    EVENT_PURGE_EVENT,
    MetricName.EVENT_PURGE,
    "byEventName",
)
RETAINED_TABLES: Final = (QUARANTINE_TABLE, PREVIEW_EVENT_TABLE)
"""The day-partitioned tables (partitions made ahead, rollup sources, retention): the one list.
The migrations create them; a test holds `db/schema.sql`'s partitioned tables equal to it."""


_DUCKDB_TYPES: Final = {
    "uuid": "VARCHAR",  # exported as text
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "timestamp with time zone": "TIMESTAMPTZ",
}

_DIMENSIONS: Final = (
    ("reason", "VARCHAR"),
    ("strict", "BOOLEAN"),
    ("repo_full_name", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("sandbox_provider", "VARCHAR"),
)
_MEASURES: Final = (
    ("quarantined", "BIGINT"),
    ("payload_bytes", "BIGINT"),
    ("offloaded", "BIGINT"),
    ("offload_skipped", "BIGINT"),
)

ARCHIVE_COLUMNS: Final[dict[ArchiveDataset, tuple[tuple[str, str], ...]]] = {
    ArchiveDataset.QUARANTINE_ROWS: tuple(
        (name, _DUCKDB_TYPES[kind])
        for name, kind, _ in sql_columns(QuarantineRecord)
        if name not in NOT_ARCHIVED
    ),
    ArchiveDataset.QUARANTINE_MINUTELY: (("minute", "TIMESTAMPTZ"), *_DIMENSIONS, *_MEASURES),
    ArchiveDataset.QUARANTINE_DAILY: (*_DIMENSIONS, *_MEASURES),
    ArchiveDataset.PREVIEW_EVENTS: (
        ("id", "VARCHAR"),
        ("ts_server", "TIMESTAMPTZ"),
        ("schema_version", "SMALLINT"),
        ("event_name", "VARCHAR"),
        ("origin", "VARCHAR"),
        ("trace_id", "VARCHAR"),
        ("thread_id", "VARCHAR"),
        ("thread_chat_id", "VARCHAR"),
        ("run_id", "VARCHAR"),
        ("codesandbox_id", "VARCHAR"),
        ("sandbox_provider", "VARCHAR"),
        ("preview_session_id", "VARCHAR"),
        ("user_id", "VARCHAR"),
        ("proxy_req_id", "VARCHAR"),
        ("properties", "VARCHAR"),
    ),
}
"""Columns of each dataset's files, with their DuckDB types (the view adds `day`); the rows'
columns are `QuarantineRecord`'s, in its order, but for `NOT_ARCHIVED`."""

AGGREGATE_DIMENSIONS: Final = tuple(name for name, _ in _DIMENSIONS)

TREND_METRICS: Final = (
    MetricName.STRICT_MISMATCH,
    MetricName.LEGACY_MODE,
    MetricName.MISSING_END_SHA,
)
"""The three trends on-call watches; the aggregate views carry them as the column `metric`."""

METRIC_SQL: Final = (
    "CASE"
    f" WHEN reason = '{QuarantineReason.MISSING_RUN_ID}'"
    f" OR (reason = '{QuarantineReason.MISMATCH}' AND strict)"
    f" THEN '{MetricName.STRICT_MISMATCH}'"
    f" WHEN reason = '{QuarantineReason.LEGACY_MODE}' THEN '{MetricName.LEGACY_MODE}'"
    f" WHEN reason = '{QuarantineReason.MISSING_END_SHA}' THEN '{MetricName.MISSING_END_SHA}'"
    " END"
)
"""`preview.strict_mismatch` is `missing_run_id` plus `mismatch` under a strict run; `strict` is the
quarantine row's own column (the frozen value the decision used). `is_strict_mismatch` is the same
rule for Prometheus; a test holds the two equal."""


def is_strict_mismatch(reason: str, strict: bool | None) -> bool:
    """Whether a quarantine row counts as `preview.strict_mismatch` (`METRIC_SQL`'s first branch).
    `missing_run_id` is only ever decided under strict, so its `strict` is not consulted."""
    return reason == QuarantineReason.MISSING_RUN_ID or (
        reason == QuarantineReason.MISMATCH and bool(strict)
    )


COMPACT_FILE: Final = "day.parquet"
"""A closed day of a dataset in one file; where present, it is the whole day (`live_files`)."""


def live_files(paths: Iterable[str]) -> list[str]:
    """Of a dataset's files (`.../day=D/<name>.parquet`), the ones that hold its data: per day
    directory its `COMPACT_FILE` when it has one, else every file; sorted."""
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        if not path.endswith(".parquet"):
            continue
        by_dir.setdefault(path.rsplit("/", 1)[0] if "/" in path else "", []).append(path)
    live: list[str] = []
    for folder, names in by_dir.items():
        compacted = f"{folder}/{COMPACT_FILE}" if folder else COMPACT_FILE
        live += [compacted] if compacted in names else names
    return sorted(live)


def archive_glob(root: str, dataset: ArchiveDataset) -> str:
    """The files of one dataset: `<root>/<dataset>/day=*/*.parquet` (never the `.tmp` ones)."""
    return f"{root.rstrip('/')}/{dataset.value}/day=*/*.parquet"


def archive_view_sql(
    dataset: ArchiveDataset,
    root: str | None,
    *,
    relation: str | None = None,
    files: list[str] | None = None,
) -> str:
    """`CREATE VIEW <dataset>` over its Parquet files; with `root=None`, an empty typed view
    (DuckDB refuses a glob that matches nothing, and a new archive has no files yet). With
    `files`, over exactly those (a listing passed through `live_files`); with `relation`, over
    that registered relation instead (an Arrow dataset of the files in a bucket, with `day` from
    the hive path)."""
    if relation is not None:
        source = f"SELECT * FROM {relation}"
    elif files:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        source = (
            f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
            "hive_types = {'day': DATE}, union_by_name = true)"
        )
    elif root is None:
        columns = [f"CAST(NULL AS {kind}) AS {name}" for name, kind in ARCHIVE_COLUMNS[dataset]]
        source = f"SELECT {', '.join(columns)}, CAST(NULL AS DATE) AS day WHERE false"
    else:
        path = archive_glob(root, dataset).replace("'", "''")
        source = (
            f"SELECT * FROM read_parquet('{path}', hive_partitioning = true, "
            "hive_types = {'day': DATE}, union_by_name = true)"
        )
    if dataset in (ArchiveDataset.QUARANTINE_MINUTELY, ArchiveDataset.QUARANTINE_DAILY):
        source = f"SELECT *, {METRIC_SQL} AS metric FROM ({source})"
    return f"CREATE OR REPLACE VIEW {dataset.value} AS {source}"
