"""Day partitions of the partitioned tables: created ahead so rows never land in DEFAULT."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from terragon_core import RETAINED_TABLES

if TYPE_CHECKING:
    import psycopg

    from terragon_ingest.db.pool import AsyncConn

PARTITIONED_TABLES: Final = tuple(t.table for t in RETAINED_TABLES)
DAYS_BACK: Final = 1
DAYS_AHEAD: Final = 8

_ENSURE: Final = (
    "SELECT terragon_ensure_day_partitions(%s::regclass, (now() AT TIME ZONE 'UTC')::date - %s, %s)"
)


def ensure_partitions(conn: psycopg.Connection[Any]) -> int:
    """Create yesterday's to next week's partitions; return how many were new."""
    created = 0
    for table in PARTITIONED_TABLES:
        row = conn.execute(_ENSURE, (table, DAYS_BACK, DAYS_BACK + DAYS_AHEAD)).fetchone()
        created += int(row[0]) if row else 0
    return created


async def ensure_partitions_async(conn: AsyncConn) -> int:
    created = 0
    for table in PARTITIONED_TABLES:
        cur = await conn.execute(_ENSURE, (table, DAYS_BACK, DAYS_BACK + DAYS_AHEAD))
        row = await cur.fetchone()
        created += int(row[0]) if row else 0
    return created
