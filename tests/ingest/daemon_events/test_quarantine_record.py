"""Core's `QuarantineRecord` is the quarantine table, column for column: the service writes and
reads rows by its field names and the archive's columns are derived from it, so a column added,
renamed or retyped on one side only fails here (`db/schema.sql` is the migrations' sum; a test
of the integration suite holds it equal to a migrated database)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

import terragon_ingest
from terragon_core import QuarantineRecord, sql_columns
from terragon_core.quarantine import Integer

SCHEMA = Path(terragon_ingest.__file__).parent / "db" / "schema.sql"
TABLE = "daemon_event_quarantine"


def _table_columns(table: str) -> dict[str, tuple[str, bool, bool]]:
    """Each column of `table` in the schema snapshot: (type, nullable, has a default)."""
    match = re.search(rf"CREATE TABLE {table} \((.*?)\n\)", SCHEMA.read_text(), re.S)
    assert match, f"{table} not in {SCHEMA}"
    columns = {}
    for line in match.group(1).strip().splitlines():
        name, rest = line.strip().rstrip(",").split(" ", 1)
        kind = re.split(r" NOT NULL| DEFAULT", rest)[0]
        columns[name] = (kind, "NOT NULL" not in rest, "DEFAULT" in rest)
    return columns


def _disagreements(record: type[msgspec.Struct], table: str) -> list[str]:
    columns = _table_columns(table)
    fields = {name: (kind, nullable) for name, kind, nullable in sql_columns(record)}
    found = [f"{name}: a column of {table}, not a field" for name in columns.keys() - fields]
    found += [f"{name}: a field, not a column of {table}" for name in fields.keys() - columns]
    for name in fields.keys() & columns.keys():
        (kind, nullable), (column_kind, column_nullable, default) = fields[name], columns[name]
        if kind != column_kind:
            found.append(f"{name}: {kind} in the record, {column_kind} in the table")
        # A field may be None where the column takes its default (the database fills it in).
        if nullable and not (column_nullable or default):
            found.append(f"{name}: may be None in the record, NOT NULL without default")
        if column_nullable and not nullable:
            found.append(f"{name}: NULL in the table, never None in the record")
    return found


def test_the_record_is_the_quarantine_table() -> None:
    assert _disagreements(QuarantineRecord, TABLE) == []


def test_a_renamed_retyped_or_missing_field_is_caught() -> None:
    class Renamed(QuarantineRecord, kw_only=True):
        payload_sha: str  # a field the table lacks

    class Retyped(msgspec.Struct, kw_only=True):
        seq: Integer | None  # bigint in the table

    assert "payload_sha: a field, not a column of daemon_event_quarantine" in _disagreements(
        Renamed, TABLE
    )
    retyped = _disagreements(Retyped, TABLE)
    assert "seq: integer in the record, bigint in the table" in retyped
    assert "trace_id: a column of daemon_event_quarantine, not a field" in retyped
