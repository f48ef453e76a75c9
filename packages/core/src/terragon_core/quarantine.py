"""A quarantine row (`daemon_event_quarantine`) as one typed record: the service builds it, the
database stores it by column name, `terragon quarantine show` and replay read it back, and the
archive's `quarantine_rows` columns are derived from it (`archive.ARCHIVE_COLUMNS`).

Each field carries its PostgreSQL type (`sql_type`); a test holds the fields, their types and
their nullability equal to the table in `db/schema.sql`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

from terragon_core.enums import QuarantineReason

Uuid = Annotated[str, msgspec.Meta(extra={"sql": "uuid"})]
SmallInt = Annotated[int, msgspec.Meta(extra={"sql": "smallint"})]
Integer = Annotated[int, msgspec.Meta(extra={"sql": "integer"})]
BigInt = Annotated[int, msgspec.Meta(extra={"sql": "bigint"})]


class QuarantineRecord(msgspec.Struct, kw_only=True):
    """One row of `daemon_event_quarantine`, column by column. Written as JSON by column name
    (`terragon_insert_quarantine`: a NULL field takes the column's default), read back by
    `fetch_quarantine`. The field order is the archive's column order (its Parquet files keep
    it), the four columns that are never archived last."""

    id: Uuid | None = None
    """Made by the service before the insert (its event carries it), else by the database."""
    created_at: datetime | None = None
    """The database's `now()` at insert."""
    thread_id: str
    thread_chat_id: str
    run_id: str | None
    """The envelope's own runId (NULL when it names none)."""
    active_run_id: str | None
    reason: QuarantineReason
    strict: bool | None
    """The frozen daemonRunIdStrict the decision used (NULL on rows older than that column)."""
    payload_version: SmallInt | None
    payload_hash: str
    payload_size: Integer
    payload_prefix_2k: str
    payload_object_key: str | None
    offload_skipped: bool = False
    repo_full_name: str | None
    user_id: str | None
    sandbox_provider: str | None
    event_id: str | None
    seq: BigInt | None
    trace_id: str | None
    payload_inline: str | None = None
    """The whole envelope as received (up to 16 KiB), else NULL: the archive keeps the prefix."""
    token_run_id: str | None = None
    """The run the sending token was minted for (NULL on rows older than that column)."""
    replayed_at: datetime | None = None
    replay_status: str | None = None


NOT_ARCHIVED: Final = frozenset({"payload_inline", "token_run_id", "replayed_at", "replay_status"})
"""Columns the rollup leaves out of `quarantine_rows` (whole payloads and replay state)."""


_SQL_TYPES: Final[dict[type, str]] = {
    msgspec.inspect.StrType: "text",
    msgspec.inspect.BoolType: "boolean",
    msgspec.inspect.DateTimeType: "timestamp with time zone",
    msgspec.inspect.EnumType: "text",
}


def sql_columns(record: type[msgspec.Struct]) -> tuple[tuple[str, str, bool], ...]:
    """Each field of a record struct as (column, PostgreSQL type, nullable), in field order: an
    `int` names its type (`SmallInt`, `Integer`, `BigInt`), a field that may be None is nullable."""
    info = msgspec.inspect.type_info(record)
    assert isinstance(info, msgspec.inspect.StructType)
    columns: list[tuple[str, str, bool]] = []
    for field in info.fields:
        kind, nullable = field.type, False
        if isinstance(kind, msgspec.inspect.UnionType):
            (kind,) = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
            nullable = True
        if isinstance(kind, msgspec.inspect.Metadata):
            assert kind.extra is not None, f"{field.name}: Annotated without its sql type"
            columns.append((field.name, kind.extra["sql"], nullable))
        elif type(kind) in _SQL_TYPES:
            columns.append((field.name, _SQL_TYPES[type(kind)], nullable))
        else:
            raise TypeError(f"{record.__name__}.{field.name}: no PostgreSQL type (annotate it)")
    return tuple(columns)
