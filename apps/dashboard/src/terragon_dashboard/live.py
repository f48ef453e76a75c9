"""The live last hour, straight from Postgres: read-only sessions with a statement timeout.

The dashboard never imports ingest; these are its only SQL statements against Postgres. Every one
takes the page's Reason and Repo/User/Provider filters as parameters (an empty list: no filter).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Final, LiteralString, cast

import pandas as pd
import psycopg
from psycopg import sql

from terragon_core import METRIC_SQL
from terragon_dashboard.archive import Filters

_OPTIONS: Final = "-c default_transaction_read_only=on -c statement_timeout=3000 -c timezone=UTC"

_FILTERS: Final = """
    AND (cardinality(%(reasons)s::text[]) = 0 OR q.reason = ANY(%(reasons)s::text[]))
    AND (cardinality(%(repos)s::text[]) = 0 OR q.repo_full_name = ANY(%(repos)s::text[]))
    AND (cardinality(%(users)s::text[]) = 0 OR q.user_id = ANY(%(users)s::text[]))
    AND (cardinality(%(providers)s::text[]) = 0 OR q.sandbox_provider = ANY(%(providers)s::text[]))
"""
"""The page's filters, as `archive._where` applies them to the archive."""

_LIVE_MINUTES: Final = cast(
    "LiteralString",
    f"""
SELECT minute AS bucket, metric, coalesce({{dimension}}, '(none)') AS series, sum(n) AS per_minute
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
    WHERE q.created_at >= now() - interval '1 hour' {_FILTERS}
    GROUP BY 1, 2, 3, 4, 5, 6
    ) per_minute
) classified
WHERE metric IS NOT NULL
GROUP BY 1, 2, 3
ORDER BY 1
""",
)

_ROWS: Final = cast(
    "LiteralString",
    f"""
SELECT created_at, id::text AS id, reason, repo_full_name, user_id, sandbox_provider, thread_id,
       run_id, active_run_id, payload_hash, payload_size, payload_object_key, payload_prefix_2k
FROM daemon_event_quarantine q
WHERE created_at >= %(since)s AND created_at < %(until)s {_FILTERS} AND {{offender}}
ORDER BY created_at DESC
LIMIT %(limit)s
""",
)

_PRESENT: Final = "SELECT id::text FROM daemon_event_quarantine WHERE id = ANY(%(ids)s::uuid[])"


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    # `url` may name a primary and its standbys with `target_session_attrs=read-write` (the
    # service's DATABASE_URL); a session made read-only above never matches that, and these
    # reads need no primary: the first host that answers, in the URL's order, serves them.
    # connect_timeout is per host.
    return psycopg.connect(
        url, autocommit=True, options=_OPTIONS, connect_timeout=3, target_session_attrs="any"
    )


def _params(filters: Filters | None) -> dict[str, object]:
    return {
        "reasons": list(filters.reasons) if filters else [],
        "repos": list(filters.repos) if filters else [],
        "users": list(filters.users) if filters else [],
        "providers": list(filters.providers) if filters else [],
    }


def _frame(url: str, query: sql.Composed, params: dict[str, object]) -> pd.DataFrame:
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def live_minutes(url: str, dimension_column: str, filters: Filters | None = None) -> pd.DataFrame:
    """Columns `bucket, metric, series, per_minute`: the trend metrics per minute of the last
    hour, per value (`series`) of `dimension_column` (`repo_full_name`, `user_id`, ...), of the
    rows that pass `filters`' reasons, repos, users and providers (its days do not apply)."""
    query = sql.SQL(_LIVE_MINUTES).format(dimension=sql.Identifier(dimension_column))
    return _frame(url, query, _params(filters))


def recent_rows(
    url: str,
    *,
    since: datetime,
    until: datetime,
    filters: Filters | None = None,
    offender: tuple[str, str] | None = None,
    limit: int = 200,
) -> pd.DataFrame:
    """Quarantine rows created in `[since, until)` that pass `filters`, newest first: prefix,
    hash and object key to drill into; only those of `offender` (`(column, value)`, e.g.
    `("repo_full_name", "acme/web")`) if given."""
    condition: sql.Composable = sql.SQL("true")
    params = _params(filters) | {"since": since, "until": until, "limit": limit}
    if offender is not None:
        condition = sql.SQL("coalesce({}, '(none)') = %(value)s").format(
            sql.Identifier(offender[0])
        )
        params["value"] = offender[1]
    return _frame(url, sql.SQL(_ROWS).format(offender=condition), params)


def present_ids(url: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` PostgreSQL still holds (past retention, or demo history, only the archive
    does). An id that is not a UUID is not there (the archive's text is not trusted as SQL)."""
    wanted: dict[str, str] = {}  # the canonical spelling -> the one given
    for value in ids:
        try:
            wanted[str(uuid.UUID(value))] = value
        except (ValueError, TypeError, AttributeError):
            continue
    if not wanted:
        return set()
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(_PRESENT, {"ids": list(wanted)})
        return {wanted[str(row[0])] for row in cur.fetchall()}
