"""The migration runner: ordered `migrations/YYYY-MM-DD-HHMM_slug.sql`, each applied once, then the
function files `functions/<function_name>.sql`, each re-applied whenever it changed.

Tables live in versioned migrations: a migration that has landed must never be edited; the runner
stores each file's sha256 and refuses to start if one changed. Functions live one per file (Flyway's
"repeatable migrations"): a changed function is a diff of its own file, and the runner re-applies
it when its sha256 differs from the one recorded, after every versioned migration. Before it does,
it drops every overload of that name, so a call can never reach an old signature. The known trap:
a versioned migration must not call a function from a file (replaying history on an empty
database would run the newest body against an old schema).

Safe when several processes start at once: the whole run holds a Postgres advisory lock, so the
second process waits and then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, LiteralString, cast

import structlog

from terragon_ingest.db.locks import MIGRATION_LOCK
from terragon_ingest.db.partitions import ensure_partitions
from terragon_ingest.errors import MigrationError

if TYPE_CHECKING:
    import psycopg

log = structlog.get_logger()

_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{4}_[a-z0-9_]+\.sql$")
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_]*\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in apply order."""
    return _load("migrations", _NAME, "YYYY-MM-DD-HHMM_slug.sql")


def load_functions() -> list[Migration]:
    """Every function file, by name (`<function_name>.sql` defines that one function)."""
    return _load("functions", _FUNCTION_NAME, "<function_name>.sql")


def _load(folder_name: str, pattern: re.Pattern[str], form: str) -> list[Migration]:
    folder = resources.files("terragon_ingest.db") / folder_name
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not pattern.match(entry.name):
            raise MigrationError(f"{folder_name} file name {entry.name!r} is not {form}")
        found.append(Migration(entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.name)


_DROP_OVERLOADS = """
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.proname = '__NAME__' AND p.pronamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END $$"""


def _ledger(conn: psycopg.Connection[Any], table: LiteralString) -> dict[str, str]:
    """name → checksum of what was applied, from `table` (created when missing)."""
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {table} (
               name text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    return {
        str(name): str(checksum)
        for name, checksum in conn.execute(f"SELECT name, checksum FROM {table}")
    }


def _apply_functions(conn: psycopg.Connection[Any]) -> list[str]:
    done = _ledger(conn, "schema_function")
    applied: list[str] = []
    for function in load_functions():
        if done.get(function.name) == function.checksum:
            continue
        name = function.name.removesuffix(".sql")
        with conn.transaction():
            # A DO block takes no parameters: the name is a checked identifier ([a-z0-9_]).
            conn.execute(cast("LiteralString", _DROP_OVERLOADS.replace("__NAME__", name)))
            conn.execute(cast("LiteralString", function.sql))
            conn.execute(
                """INSERT INTO schema_function (name, checksum) VALUES (%s, %s)
                   ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum,
                                                    applied_at = now()""",
                (function.name, function.checksum),
            )
        applied.append(function.name)
        log.debug("function_applied", function=function.name)
    return applied


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations, then changed function files, on an autocommit connection; return
    the names applied."""
    applied_now: list[str] = []
    migrations = load_migrations()
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        done = _ledger(conn, "schema_migration")
        for migration in migrations:
            if migration.name in done:
                if done[migration.name] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name!r} changed after it was applied; "
                        "landed migrations are immutable: add a new one instead"
                    )
                continue
            with conn.transaction():
                conn.execute(cast("LiteralString", migration.sql))
                conn.execute(
                    "INSERT INTO schema_migration (name, checksum) VALUES (%s, %s)",
                    (migration.name, migration.checksum),
                )
            applied_now.append(migration.name)
            log.debug("migration_applied", migration=migration.name)  # the sum below at info
        migrated = len(applied_now)
        functions = _apply_functions(conn)
        applied_now += functions
        ensure_partitions(conn)
        # one line, whatever the count (a first start applies them all)
        log.info(
            "migrations_applied",
            applied=migrated,
            pending=0,
            total=len(migrations),
            functions_applied=len(functions),
        )
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now
