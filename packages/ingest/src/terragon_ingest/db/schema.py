"""The schema as it is, in one readable file: `db/schema.sql` is this module's rendering of a
database migrated from empty (tables, defaults, storage parameters, constraints, indexes,
function signatures; each function's body is in its own file, `db/functions/<name>.sql`), checked by
`tests/ingest/db/test_schema_snapshot.py`. Regenerate it after adding a migration or
changing a function file: `uv run terragon migrate --write-schema`.

Rendered from the catalogs, not `pg_dump`, so that it reads the same on every PostgreSQL the
service supports: no version banner, no SET lines, no owners. Day partitions are left out (they
move with the calendar); the DEFAULT partitions are listed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

HEADER = (
    "-- The schema at head, rendered by terragon_ingest.db.schema from a database migrated from\n"
    "-- empty. Generated: do not edit; change a migration or a function file, then run\n"
    "-- `uv run terragon migrate --write-schema`.\n"
)

_TABLES = """
SELECT c.oid, c.relname, pg_get_partkeydef(c.oid), array_to_string(c.reloptions, ', ')
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %s ORDER BY conname
"""
_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid)
ORDER BY i.relname
"""
_DEFAULT_PARTITIONS = """
SELECT c.relname, p.relname FROM pg_class c
JOIN pg_inherits h ON h.inhrelid = c.oid JOIN pg_class p ON p.oid = h.inhparent
WHERE c.relnamespace = current_schema()::regnamespace
  AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
ORDER BY c.relname
"""
_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid),
       md5(pg_get_functiondef(p.oid))
FROM pg_proc p
WHERE p.pronamespace = current_schema()::regnamespace
ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""


def render_schema(conn: psycopg.Connection[Any]) -> str:
    """The schema of the connection's database, as `schema.sql` holds it."""
    out = [HEADER]
    for oid, name, partition_key, options in conn.execute(_TABLES).fetchall():
        columns = [
            f"    {col} {kind}{' NOT NULL' if not_null else ''}"
            + (f" DEFAULT {default}" if default is not None else "")
            for col, kind, not_null, default in conn.execute(_COLUMNS, (oid,)).fetchall()
        ]
        tail = f" PARTITION BY {partition_key}" if partition_key else ""
        tail += f" WITH ({options})" if options else ""  # storage parameters (fillfactor)
        out.append(f"CREATE TABLE {name} (\n" + ",\n".join(columns) + f"\n){tail};")
        out += [
            f"ALTER TABLE {name} ADD CONSTRAINT {con} {definition};"
            for con, definition in conn.execute(_CONSTRAINTS, (oid,)).fetchall()
        ]
        out += [f"{definition};" for _, definition in conn.execute(_INDEXES, (oid,)).fetchall()]
        out.append("")
    for child, parent in conn.execute(_DEFAULT_PARTITIONS).fetchall():
        out.append(f"CREATE TABLE {child} PARTITION OF {parent} DEFAULT;")
    out.append("")
    # A function's body lives in its own file (db/functions/); here its signature and a digest of
    # its definition as PostgreSQL holds it, so a changed body still makes the snapshot stale.
    for name, arguments, result, digest in conn.execute(_FUNCTIONS).fetchall():
        out.append(
            f"-- FUNCTION {name}({arguments})\n--     RETURNS {result}\n"
            f"--     body: db/functions/{name}.sql (definition md5 {digest})\n"
        )
    return "\n".join(out).rstrip() + "\n"


def write_snapshot(database_url: str) -> Path:
    """Render the (migrated) database's schema into `db/schema.sql`; return its path."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        snapshot_path().write_text(render_schema(conn), encoding="utf-8")
    return snapshot_path()


def snapshot_path() -> Path:
    """`db/schema.sql` in the source tree (the package is installed editable)."""
    return Path(str(resources.files("terragon_ingest.db") / "schema.sql"))
