"""Read-only queries over the Parquet archive: an in-memory DuckDB with the archive's views
(from `terragon_core.archive`), so the rollup can keep writing while the dashboard reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Final, Literal

import duckdb
import pandas as pd

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


def top_offenders(
    con: duckdb.DuckDBPyConnection, filters: Filters, dimension: Dimension, limit: int = 10
) -> pd.DataFrame:
    """The dimension values with the most quarantined envelopes in range, per trend metric."""
    where, params = _where(filters)
    column = DIMENSION_COLUMNS[dimension]
    return con.execute(
        f"""
        SELECT coalesce({column}, '(none)') AS {dimension},
               sum(quarantined) FILTER (WHERE metric = 'preview.strict_mismatch') AS strict_mismatch,
               sum(quarantined) FILTER (WHERE metric = 'preview.legacy_mode') AS legacy_mode,
               sum(quarantined) FILTER (WHERE metric = 'preview.missing_end_sha') AS missing_end_sha,
               sum(quarantined) AS all_reasons,
               sum(payload_bytes) AS payload_bytes,
               sum(offloaded) AS offloaded,
               sum(offload_skipped) AS offload_skipped
        FROM quarantine_daily WHERE {where}
        GROUP BY 1 ORDER BY all_reasons DESC, 1 LIMIT {int(limit)}
        """,
        params,
    ).df()


def recent_rows(con: duckdb.DuckDBPyConnection, filters: Filters, limit: int = 200) -> pd.DataFrame:
    """The latest archived quarantine rows in range (drill-down when Postgres is not reachable)."""
    where, params = _where(filters)
    return con.execute(
        f"""
        SELECT created_at, reason, repo_full_name, user_id, sandbox_provider, thread_id, run_id,
               active_run_id, payload_hash, payload_size, payload_object_key, payload_prefix_2k
        FROM quarantine_rows WHERE {where}
        ORDER BY created_at DESC LIMIT {int(limit)}
        """,
        params,
    ).df()


def default_range(choice: Choices, today: date) -> tuple[date, date]:
    """The last 30 days of the archive (ending at its last day, or today when empty)."""
    end = choice.last_day or today
    return end - timedelta(days=29), end
