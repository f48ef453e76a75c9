"""Read-only queries over the Parquet archive: an in-memory DuckDB with the archive's views
(from `terragon_core.archive`), so the rollup can keep writing while the dashboard reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

import duckdb
import pandas as pd

from terragon_core import TREND_METRICS
from terragon_dashboard.source import add_views

Dimension = Literal["repo", "user", "provider"]

DIMENSION_COLUMNS: Final[dict[Dimension, str]] = {
    "repo": "repo_full_name",
    "user": "user_id",
    "provider": "sandbox_provider",
}
TOP_SERIES: Final = 8
"""Series drawn per chart: the largest ones."""


@dataclass(frozen=True, slots=True)
class Filters:
    start: date
    end: date
    """Inclusive UTC days."""
    reasons: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def narrowed(self) -> bool:
        """Whether a Reason, Repo, User or Provider filter is set."""
        return bool(self.reasons or self.repos or self.users or self.providers)

    def unfiltered(self) -> Filters:
        """The same days, no other filter (what an empty panel compares against)."""
        return Filters(start=self.start, end=self.end)

    def describe(self) -> str:
        """`2026-12-01..2026-12-06` (or one day), for captions and empty states."""
        return f"{self.start}" if self.start == self.end else f"{self.start}..{self.end}"


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filters offer: the values present in the archive."""

    first_day: date | None
    last_day: date | None
    reasons: list[str] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)


def open_archive(root: Path | str) -> duckdb.DuckDBPyConnection:
    """The archive's views in an in-memory DuckDB; `root` is a directory or an `s3://` URL."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    try:
        add_views(con, root)
    except BaseException:
        con.close()
        raise
    return con


def bucket_for(filters: Filters) -> tuple[str, int]:
    """The chart's time bucket for a range: minutes up to a day, hours up to a week, else days."""
    if filters.days <= 1:
        return "minute", 1
    if filters.days <= 7:
        return "hour", 60
    return "day", 1440


def _where(filters: Filters, *, day_column: str = "day") -> tuple[str, list[object]]:
    clauses = [f"{day_column} BETWEEN ? AND ?"]
    params: list[object] = [filters.start, filters.end]
    for column, values in (
        ("reason", filters.reasons),
        ("repo_full_name", filters.repos),
        ("user_id", filters.users),
        ("sandbox_provider", filters.providers),
    ):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    return " AND ".join(clauses), params


def choices(con: duckdb.DuckDBPyConnection) -> Choices:
    span = con.execute("SELECT min(day), max(day) FROM quarantine_daily").fetchone()

    def distinct(column: str) -> list[str]:
        rows = con.execute(
            f"SELECT DISTINCT {column} FROM quarantine_daily WHERE {column} IS NOT NULL ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    return Choices(
        first_day=span[0] if span else None,
        last_day=span[1] if span else None,
        reasons=distinct("reason"),
        repos=distinct("repo_full_name"),
        users=distinct("user_id"),
        providers=distinct("sandbox_provider"),
    )


def trend(con: duckdb.DuckDBPyConnection, filters: Filters, dimension: Dimension) -> pd.DataFrame:
    """Columns `bucket, metric, series, per_minute`: per bucket, the busiest minute's count of
    each trend metric (what the per-minute alert threshold compares against), split by
    `dimension`: its `TOP_SERIES` largest values per metric (the alert is per value, so the rest
    are not summed into one misleading line; the top-offenders table ranks them all)."""
    bucket, _ = bucket_for(filters)
    where, params = _where(filters)
    column = DIMENSION_COLUMNS[dimension]
    return con.execute(
        f"""
        WITH top AS (
            SELECT metric, coalesce({column}, '(none)') AS series
            FROM quarantine_daily WHERE metric IS NOT NULL AND {where}
            GROUP BY 1, 2
            QUALIFY row_number() OVER (PARTITION BY metric ORDER BY sum(quarantined) DESC, series)
                <= {TOP_SERIES}
        ),
        per_minute AS (
            SELECT minute, metric, coalesce({column}, '(none)') AS series, sum(quarantined) AS n
            FROM quarantine_minutely
            WHERE metric IS NOT NULL AND {where}
              AND coalesce({column}, '(none)') IN (SELECT series FROM top)
            GROUP BY ALL
        )
        SELECT date_trunc('{bucket}', minute) AS bucket, metric, series, max(n) AS per_minute
        FROM per_minute SEMI JOIN top USING (metric, series)
        GROUP BY ALL ORDER BY bucket, series
        """,
        params + params,
    ).df()


QUARANTINED: Final = "quarantined"
"""The offenders' column of every row that passes the filters (every reason, when none is set)."""


def metric_column(metric: str) -> str:
    """The offenders' column of a trend metric: `preview.legacy_mode` -> `legacy_mode`."""
    return metric.removeprefix("preview.")


RANKINGS: Final = (QUARANTINED, *(metric_column(m.value) for m in TREND_METRICS))
"""What the offenders table can be ranked by."""


def top_offenders(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    dimension: Dimension,
    limit: int = 10,
    *,
    rank_by: str = QUARANTINED,
) -> pd.DataFrame:
    """The dimension values with the most quarantined envelopes in range (all that pass the
    filters: with a Reason set, that reason's), per trend metric; the top `limit` by `rank_by`
    (one of `RANKINGS`), then by `quarantined`."""
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {RANKINGS}, not {rank_by!r}")
    where, params = _where(filters)
    column = DIMENSION_COLUMNS[dimension]
    # an absent count is 0, not NULL (which the table would print as "None")
    per_metric = "".join(
        f"coalesce(sum(quarantined) FILTER (WHERE metric = '{m.value}'), 0) "
        f"AS {metric_column(m.value)}, "
        for m in TREND_METRICS
    )
    return con.execute(
        f"""
        SELECT coalesce({column}, '(none)') AS {dimension},
               coalesce(sum(quarantined), 0) AS {QUARANTINED}, {per_metric}
               coalesce(sum(payload_bytes), 0) AS payload_bytes,
               coalesce(sum(offloaded), 0) AS offloaded,
               coalesce(sum(offload_skipped), 0) AS offload_skipped
        FROM quarantine_daily WHERE {where}
        GROUP BY 1 ORDER BY {rank_by} DESC, {QUARANTINED} DESC, 1 LIMIT {int(limit)}
        """,
        params,
    ).df()


def metric_totals(con: duckdb.DuckDBPyConnection, filters: Filters) -> dict[str, int]:
    """Quarantined envelopes per trend metric in range, of the rows that pass `filters` (an
    empty chart tells "nothing happened" from "the filters hid it" by comparing the two)."""
    where, params = _where(filters)
    rows = con.execute(
        f"""SELECT metric, coalesce(sum(quarantined), 0) FROM quarantine_daily
            WHERE metric IS NOT NULL AND {where} GROUP BY 1""",
        params,
    ).fetchall()
    return {str(metric): int(n) for metric, n in rows}


def quarantined_count(con: duckdb.DuckDBPyConnection, filters: Filters) -> int:
    """Quarantined envelopes (every reason) in range that pass `filters`."""
    where, params = _where(filters)
    row = con.execute(
        f"SELECT coalesce(sum(quarantined), 0) FROM quarantine_daily WHERE {where}", params
    ).fetchone()
    return int(row[0]) if row else 0


ROW_COLUMNS: Final = (
    "created_at, id, reason, repo_full_name, user_id, sandbox_provider, thread_id, run_id, "
    "active_run_id, payload_hash, payload_size, payload_object_key, payload_prefix_2k"
)
"""The drill-down's columns, in the archive and in Postgres (`live.recent_rows`)."""


def recent_rows(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    limit: int = 200,
    *,
    offender: tuple[Dimension, str] | None = None,
) -> pd.DataFrame:
    """The latest archived quarantine rows in range, of one offender (a dimension's value) if
    given (drill-down from the offenders table; the only rows when Postgres is not reachable)."""
    where, params = _where(filters)
    if offender is not None:
        dimension, value = offender
        where += f" AND coalesce({DIMENSION_COLUMNS[dimension]}, '(none)') = ?"
        params.append(value)
    return con.execute(
        f"""
        SELECT {ROW_COLUMNS}
        FROM quarantine_rows WHERE {where}
        ORDER BY created_at DESC LIMIT {int(limit)}
        """,
        params,
    ).df()


_FREQ: Final = {"minute": "min", "hour": "h", "day": "D"}


def with_zeros(data: pd.DataFrame, bucket: str, start: datetime, end: datetime) -> pd.DataFrame:
    """`data` (`bucket, series, per_minute`, maybe `metric`) with a 0 for every bucket in
    `[start, end)` a series has no row in: an absent count is 0, not a line drawn across."""
    if data.empty:
        return data
    keys = [c for c in ("metric", "series") if c in data.columns]
    frame = data.assign(
        bucket=pd.to_datetime(data["bucket"], utc=True).astype("datetime64[us, UTC]")
    )
    buckets = pd.date_range(start, end, freq=_FREQ[bucket], inclusive="left").astype(
        "datetime64[us, UTC]"
    )
    pairs = frame[keys].drop_duplicates()
    grid = pairs.merge(pd.DataFrame({"bucket": buckets}), how="cross")
    merged = grid.merge(frame, on=[*keys, "bucket"], how="outer")
    # float64, as DuckDB returns it: an int64 column reaches Vega as BigInt, which it cannot plot
    merged["per_minute"] = merged["per_minute"].fillna(0).astype("float64")
    return merged.sort_values(["bucket", *keys], ignore_index=True)


def default_range(choice: Choices, today: date) -> tuple[date, date]:
    """The last 30 days, up to today: today's rows are in Postgres before the archive has a row
    of today (just after midnight UTC, or after quiet hours), and on-call opens the page for them.
    An archive whose last day is older than that (read long after, a copy) shows its own last 30
    days; an empty one, up to today."""
    last = choice.last_day
    end = last if last is not None and last < today - timedelta(days=29) else today
    return end - timedelta(days=29), end
