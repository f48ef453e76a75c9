"""The migration runner: ordered `migrations/YYYY-MM-DD-HHMM_slug.sql`, each applied once.

Safe when several processes start at once: the whole run holds a Postgres advisory lock, so the
second process waits and then finds nothing to do. A migration that has landed must never be
edited; the runner stores each file's sha256 and refuses to start if one changed.
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


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in apply order."""
    folder = resources.files("terragon_ingest.db") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not _NAME.match(entry.name):
            raise MigrationError(
                f"migration file name {entry.name!r} is not YYYY-MM-DD-HHMM_slug.sql"
            )
        found.append(Migration(entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.name)


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations on an autocommit connection; return the names applied."""
    applied_now: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migration (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            str(name): str(checksum)
            for name, checksum in conn.execute("SELECT name, checksum FROM schema_migration")
        }
        for migration in load_migrations():
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
            log.info("migration_applied", migration=migration.name)
        ensure_partitions(conn)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now
