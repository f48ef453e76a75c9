"""SQL of the archive domain. The rollup runs in a worker thread on a sync connection of its own; retention runs on the service's async pool (its event is emitted there)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, LiteralString, cast

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.types.json import Jsonb

from terragon_core import ARCHIVE_COLUMNS, QUARANTINE_TABLE, RETAINED_TABLES, ArchiveDataset
from terragon_ingest import db
from terragon_ingest.db import load_queries

if TYPE_CHECKING:
    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.archive")

Conn = psycopg.Connection[Any]

_ARROW_TYPES: Final = {
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "SMALLINT": pa.int16(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "TIMESTAMPTZ": pa.int64(),  # epoch microseconds on the wire, converted below
}
_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
_EXPORTS: Final = {
    ArchiveDataset.QUARANTINE_ROWS: "export_quarantine",
    ArchiveDataset.PREVIEW_EVENTS: "export_preview_event",
}
_EXPORT_COLUMNS: Final[dict[ArchiveDataset, dict[str, LiteralString]]] = {
    ArchiveDataset.QUARANTINE_ROWS: {
        "id": "q.id::text",
        # `strict` is the frozen daemonRunIdStrict the decision used, stored on the row. Rows
        # written before that column (migration 2026-11-30-2220) have NULL: for those only, the
        # old derivation (the run named by coalesce(active_run_id, run_id)); COALESCE skips the
        # lookup for the others.
        "strict": "coalesce(q.strict, (SELECT r.frozen_daemon_run_id_strict FROM thread_run r"
        " WHERE r.run_id = coalesce(q.active_run_id, q.run_id)))",
    },
    ArchiveDataset.PREVIEW_EVENTS: {"id": "q.id::text", "properties": "q.properties::text"},
}
"""The export's columns that are not read as stored; a TIMESTAMPTZ is read as epoch
microseconds (exact: `extract(epoch ...)` is numeric), every other column by its name."""


def _export_query(dataset: ArchiveDataset) -> LiteralString:
    """The dataset's COPY, its SELECT list derived from `ARCHIVE_COLUMNS` (the CSV is read back
    by position: one list, so the two cannot drift)."""
    special = _EXPORT_COLUMNS[dataset]
    columns = [
        special.get(name)
        or (
            f"(extract(epoch FROM q.{name}) * 1000000)::bigint"
            if kind == "TIMESTAMPTZ"
            else f"q.{name}"
        )
        for name, kind in ARCHIVE_COLUMNS[dataset]
    ]
    # The names are core's column names, not input: the text is as literal as the file's.
    return cast("LiteralString", Q[_EXPORTS[dataset]].replace("{columns}", ", ".join(columns)))


for _dataset, _name in _EXPORTS.items():
    Q[_name] = _export_query(_dataset)  # as it runs (tests read it here too)


def connect(url: str) -> Conn:
    """A standalone connection to the primary of `url` (one host or several: `db.conninfo`)."""
    return db.connect(url)


@contextmanager
def advisory_lock(conn: Conn, key: int) -> Iterator[bool]:
    """Yield whether this session holds the lock; release it on the way out."""
    row = conn.execute(Q["try_lock"], {"key": key}).fetchone()
    held = bool(row and row[0])
    try:
        yield held
    finally:
        if held:
            conn.execute(Q["unlock"], {"key": key})


def fetch_now(conn: Conn) -> datetime:
    row = conn.execute(Q["fetch_now"]).fetchone()
    assert row is not None
    return row[0]


def fetch_watermark(conn: Conn, dataset: str) -> datetime | None:
    row = conn.execute(Q["fetch_watermark"], {"dataset": dataset}).fetchone()
    return row[0] if row else None


def insert_watermark(conn: Conn, dataset: str, watermark: datetime) -> None:
    conn.execute(Q["insert_watermark"], {"dataset": dataset, "watermark": watermark})


def advance_watermark(conn: Conn, dataset: str, old: datetime, new: datetime) -> None:
    cur = conn.execute(Q["advance_watermark"], {"dataset": dataset, "old": old, "new": new})
    if cur.rowcount != 1:
        raise RuntimeError(f"watermark of {dataset!r} moved under the rollup (expected {old})")


def fetch_first_at(conn: Conn, dataset: ArchiveDataset, since: datetime) -> datetime | None:
    name = (
        "first_quarantine_at"
        if dataset is ArchiveDataset.QUARANTINE_ROWS
        else "first_preview_event_at"
    )
    row = conn.execute(Q[name], {"since": since}).fetchone()
    return row[0] if row else None


_COUNTS: Final = {
    ArchiveDataset.QUARANTINE_ROWS: "count_quarantine",
    ArchiveDataset.PREVIEW_EVENTS: "count_preview_event",
}


def count_rows(conn: Conn, dataset: ArchiveDataset, lo: datetime, hi: datetime) -> int:
    """How many rows `export_rows(conn, dataset, lo, hi)` would return."""
    row = conn.execute(Q[_COUNTS[dataset]], {"lo": lo, "hi": hi}).fetchone()
    return int(row[0]) if row else 0


def export_rows(conn: Conn, dataset: ArchiveDataset, lo: datetime, hi: datetime) -> pa.Table:
    """Rows with `lo <= ts < hi` as an Arrow table shaped like the dataset's Parquet files:
    one `COPY ... TO STDOUT (FORMAT csv)` read by Arrow's CSV reader (no per-row Python)."""
    columns = ARCHIVE_COLUMNS[dataset]
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(Q[_EXPORTS[dataset]], {"lo": lo, "hi": hi}) as copy:
        for chunk in copy:
            buffer.write(chunk)
    names = [name for name, _ in columns]
    if buffer.tell() == 0:
        return pa.table(
            {
                name: pa.array([], _TIMESTAMP if kind == "TIMESTAMPTZ" else _ARROW_TYPES[kind])
                for name, kind in columns
            }
        )
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=names),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: _ARROW_TYPES[kind] for name, kind in columns},
            true_values=["t"],
            false_values=["f"],
            # COPY csv writes NULL unquoted and '' quoted: keep the difference.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    for name, kind in columns:
        if kind == "TIMESTAMPTZ":
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, table.column(name).cast(_TIMESTAMP))
    return table


# ---------------------------------------------------------------- retention (async pool)

GroupKey = tuple[str | None, ...]
"""A reconciliation group: (reason, repo, user, provider) of quarantine rows, (event_name,) of
preview events."""

_RETAINED: Final = frozenset(t.table for t in RETAINED_TABLES)
_EXPIRING: Final = ("github_webhook_delivery",)
_SEAL_TRIGGER: Final = "terragon_day_seal"
_SEAL_TRUNCATE_TRIGGER: Final = "terragon_day_seal_truncate"


def _query(table: str, stem: str) -> LiteralString:
    """`Q["<stem>_<table>"]` for one of the retained tables (the queries differ by column)."""
    if table not in _RETAINED:
        raise ValueError(f"not a retained table: {table!r}")
    return Q[f"{stem}_{table}"]


def partition_name(day: date, table: str = QUARANTINE_TABLE.table) -> str:
    return f"{table}_p{day:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class DayPartition:
    """A day partition of a retained table, with its seal if it has one."""

    name: str
    day: date
    sealed_rows: int | None
    """The seal's row count (None: not sealed, or a write broke the seal)."""


async def list_day_partitions(conn: AsyncConn, table: str) -> list[DayPartition]:
    cur = await conn.execute(Q["list_day_partitions"], {"parent": table})
    return [
        DayPartition(
            name=str(r[0]),
            day=datetime.strptime(str(r[0]).rsplit("_p", 1)[1], "%Y%m%d").date(),
            sealed_rows=None if r[1] is None else int(r[1]),
        )
        for r in await cur.fetchall()
    ]


async def fetch_seal(conn: AsyncConn, dataset: str, day: date) -> tuple[dict[str, int], str]:
    """A seal's (breakdown, archive fingerprint)."""
    cur = await conn.execute(Q["fetch_seal"], {"dataset": dataset, "day": day})
    row = await cur.fetchone()
    if row is None:
        return {}, ""
    return {str(k): int(v) for k, v in row[0].items()}, str(row[1])


async def list_default_days(conn: AsyncConn, table: str, before: datetime) -> list[date]:
    cur = await conn.execute(_query(table, "list_default_days"), {"before": before})
    return [row[0] for row in await cur.fetchall()]


async def count_day(conn: AsyncConn, table: str, lo: datetime, hi: datetime) -> int:
    cur = await conn.execute(_query(table, "count_day"), {"lo": lo, "hi": hi})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def count_groups(
    conn: AsyncConn, table: str, lo: datetime, hi: datetime
) -> dict[GroupKey, int]:
    cur = await conn.execute(_query(table, "count_groups"), {"lo": lo, "hi": hi})
    return {tuple(r[:-1]): int(r[-1]) for r in await cur.fetchall()}


async def fetch_quarantine_object_keys(conn: AsyncConn, lo: datetime, hi: datetime) -> list[str]:
    cur = await conn.execute(Q["fetch_quarantine_object_keys"], {"lo": lo, "hi": hi})
    return [str(row[0]) for row in await cur.fetchall()]


async def lock_partition(conn: AsyncConn, name: str, mode: str, *, timeout_ms: int) -> bool:
    """In the caller's transaction: take `mode` on the partition, waiting at most `timeout_ms`.
    False when it timed out (the transaction is then aborted: leave it)."""
    if mode not in ("SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"):
        raise ValueError(f"unexpected lock mode {mode!r}")
    await conn.execute(
        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(timeout_ms)}ms"))
    )
    try:
        await conn.execute(
            sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.Identifier(name), sql.SQL(mode))
        )
    except psycopg.errors.LockNotAvailable:
        return False
    return True


async def create_seal_triggers(conn: AsyncConn, name: str, columns: list[str]) -> None:
    """Triggers that delete the partition's seal with any write that could change what the
    archive holds of it: a row inserted or deleted, an archived column updated, a TRUNCATE."""
    ident = sql.Identifier(name)
    await conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} AFTER INSERT OR DELETE OR UPDATE OF {} ON {} "
            "FOR EACH ROW EXECUTE FUNCTION terragon_break_day_seal()"
        ).format(
            sql.Identifier(_SEAL_TRIGGER),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            ident,
        )
    )
    await conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION terragon_break_day_seal()"
        ).format(sql.Identifier(_SEAL_TRUNCATE_TRIGGER), ident)
    )


async def insert_seal(
    conn: AsyncConn,
    *,
    dataset: str,
    day: date,
    partition: str,
    rows: int,
    breakdown: dict[str, int],
    fingerprint: str,
) -> None:
    await conn.execute(Q["delete_seal"], {"dataset": dataset, "day": day, "partition": partition})
    await conn.execute(
        Q["insert_seal"],
        {
            "dataset": dataset,
            "day": day,
            "partition": partition,
            "rows": rows,
            "breakdown": Jsonb(breakdown),
            "fingerprint": fingerprint,
        },
    )


async def take_seal(conn: AsyncConn, *, dataset: str, day: date, partition: str) -> int | None:
    """Delete the partition's seal and return its row count; None when a write broke it."""
    cur = await conn.execute(
        Q["take_seal"], {"dataset": dataset, "day": day, "partition": partition}
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def drop_partition(conn: AsyncConn, name: str) -> bool:
    """DROP TABLE: the day's rows leave in O(1), never by a row-by-row DELETE (the partition
    leaves its parent, and its seal triggers go with it). False when a lock wait timed out
    (`lock_partition`'s timeout holds for the transaction; leave the aborted transaction)."""
    try:
        await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


async def delete_default_day(conn: AsyncConn, table: str, lo: datetime, hi: datetime) -> int:
    """Rows that fell into the DEFAULT partition (partitions not created in time)."""
    cur = await conn.execute(_query(table, "delete_default_day"), {"lo": lo, "hi": hi})
    return cur.rowcount


async def expire_rows(conn: AsyncConn, table: str, before: datetime, *, dry_run: bool) -> int:
    """Delete (or, `dry_run`, count) the rows of an expiring table older than `before`."""
    if table not in _EXPIRING:
        raise ValueError(f"not an expiring table: {table!r}")
    if dry_run:
        cur = await conn.execute(Q[f"count_expired_{table}"], {"before": before})
        row = await cur.fetchone()
        return int(row[0]) if row else 0
    cur = await conn.execute(Q[f"delete_expired_{table}"], {"before": before})
    return cur.rowcount


async def fetch_now_async(conn: AsyncConn) -> datetime:
    cur = await conn.execute(Q["fetch_now"])
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def fetch_watermark_async(conn: AsyncConn, dataset: str) -> datetime | None:
    cur = await conn.execute(Q["fetch_watermark"], {"dataset": dataset})
    row = await cur.fetchone()
    return row[0] if row else None


async def async_connect(url: str) -> AsyncConn:
    """A standalone async connection (the CLI's, outside the service's pool)."""
    return await db.connect_async(url)
