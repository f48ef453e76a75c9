"""The live last hour, straight from Postgres: read-only sessions with a statement timeout.

The dashboard never imports ingest; these are its only SQL statements against Postgres.
"""

from __future__ import annotations

from typing import Final, LiteralString, cast

import pandas as pd
import psycopg
from psycopg import sql

from terragon_core import METRIC_SQL

_OPTIONS: Final = "-c default_transaction_read_only=on -c statement_timeout=3000 -c timezone=UTC"

_LIVE_MINUTES: Final = cast(
    "LiteralString",
    f"""
SELECT minute AS bucket, metric || ' · ' || coalesce({{dimension}}, '(none)') AS series,
       sum(n) AS per_minute
FROM (
    SELECT minute, {METRIC_SQL} AS metric, repo_full_name, user_id, sandbox_provider, n
    FROM (
    SELECT date_trunc('minute', q.created_at) AS minute, q.reason,
           -- the row's own `strict` (what the decision used); rows older than that column
           -- (migration 2026-11-30-2220) fall back to the run coalesce(active_run_id, run_id)
           coalesce(q.strict, (SELECT r.frozen_daemon_run_id_strict FROM thread_run r
                               WHERE r.run_id = coalesce(q.active_run_id, q.run_id))) AS strict,
           q.repo_full_name, q.user_id, q.sandbox_provider, count(*) AS n
    FROM daemon_event_quarantine q
    WHERE q.created_at >= now() - interval '1 hour'
    GROUP BY 1, 2, 3, 4, 5, 6
    ) per_minute
) classified
WHERE metric IS NOT NULL
GROUP BY 1, 2
ORDER BY 1
""",
)

_RECENT_ROWS: Final = """
SELECT created_at, id::text AS id, reason, repo_full_name, user_id, sandbox_provider, thread_id,
       run_id, active_run_id, payload_hash, payload_size, payload_object_key, payload_prefix_2k
FROM daemon_event_quarantine
WHERE created_at >= now() - interval '1 hour' AND {offender}
ORDER BY created_at DESC
LIMIT %(limit)s
"""


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, options=_OPTIONS, connect_timeout=3)


def live_minutes(url: str, dimension_column: str) -> pd.DataFrame:
    """Columns `bucket, series, per_minute`: the trend metrics per minute of the last hour, one
    series per metric and value of `dimension_column` (`repo_full_name`, `user_id`, ...)."""
    query = sql.SQL(_LIVE_MINUTES).format(dimension=sql.Identifier(dimension_column))
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def recent_rows(
    url: str, limit: int = 200, *, offender: tuple[str, str] | None = None
) -> pd.DataFrame:
    """The last hour's quarantine rows, newest first: prefix, hash and object key to drill into;
    only those of `offender` (`(column, value)`, e.g. `("repo_full_name", "acme/web")`) if given."""
    condition: sql.Composable = sql.SQL("true")
    params: dict[str, object] = {"limit": limit}
    if offender is not None:
        condition = sql.SQL("coalesce({}, '(none)') = %(value)s").format(
            sql.Identifier(offender[0])
        )
        params["value"] = offender[1]
    query = sql.SQL(_RECENT_ROWS).format(offender=condition)
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)
