"""The psycopg 3 async connection pool and the translation of driver errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from terragon_ingest.errors import DatabaseUnavailable, UnstorableValue

AsyncConn = psycopg.AsyncConnection[Any]
Pool = AsyncConnectionPool[AsyncConn]

RETRYABLE_CONFLICTS: tuple[type[Exception], ...] = (
    psycopg.errors.UniqueViolation,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)
"""Errors a concurrent writer can cause; the transaction is safe to retry from the start."""

# autocommit: reads cost one round trip; writes open `conn.transaction()` explicitly.
CONNECTION_KWARGS: dict[str, object] = {"autocommit": True, "options": "-c timezone=UTC"}


def create_pool(
    url: str, *, min_size: int, max_size: int, timeout: float, statement_timeout: float = 0
) -> Pool:
    """A closed pool; open it with `await pool.open(wait=True)` in the lifespan.
    `statement_timeout` (seconds, 0 = none) bounds every statement of its connections, as a
    connection option: no round trip per statement (`TERRAGON_DB_STATEMENT_TIMEOUT`)."""
    kwargs = dict(CONNECTION_KWARGS)
    if statement_timeout > 0:
        kwargs["options"] = (
            f"{kwargs['options']} -c statement_timeout={int(statement_timeout * 1000)}"
        )
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=kwargs,
        open=False,
        name="terragon",
    )


def why_unreachable(url: str, *, connect_timeout: float) -> str | None:
    """None when one connection to `url` opens; else the driver's reason, on one line (for an
    operator's command, which names the server instead of waiting out a pool's timeout)."""
    try:
        psycopg.connect(url, connect_timeout=max(2, round(connect_timeout))).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Driver errors become domain errors: an outage is `DatabaseUnavailable` (503), a value the
    database cannot store is `InvalidRequest` (400)."""
    try:
        yield
    except psycopg.errors.ProgramLimitExceeded as exc:
        # An OperationalError by class, but the caller's input (a value too large to index): the
        # same request would fail forever, so it is a 400, never a 503.
        raise UnstorableValue(f"a value is too large to store: {exc}") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc}") from exc
    except psycopg.DataError as exc:
        # A value PostgreSQL cannot store (a NUL byte in text, `\u0000` in jsonb, an out-of-range
        # number) is the caller's input, not an outage: a 400, nothing written.
        raise UnstorableValue(f"a value cannot be stored: {exc}") from exc


@contextlib.asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[AsyncConn]:
    """A pooled connection with driver outages translated to `DatabaseUnavailable`."""
    with translate_errors():
        async with pool.connection() as conn:
            yield conn


@contextlib.asynccontextmanager
async def unbounded(pool: Pool) -> AsyncIterator[AsyncConn]:
    """A pooled connection without the pool's statement timeout, for a periodic job whose
    statements may rightly run long (a retention purge, a sweep); the bound is restored before
    the connection goes back to the pool."""
    async with connection(pool) as conn:
        await conn.execute("SET statement_timeout = 0")
        try:
            yield conn
        finally:
            if not conn.broken:
                await conn.execute("RESET statement_timeout")
