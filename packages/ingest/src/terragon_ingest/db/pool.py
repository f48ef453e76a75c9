"""The psycopg 3 async connection pool and the translation of driver errors.

Failover (docs/operations.md "Failover"): `DATABASE_URL` may name several hosts, libpq's
multi-host form (`postgresql://u@h1:5432,h2:5432/db?target_session_attrs=read-write`); every
connection of the service is opened through `conninfo`, which connects to whichever of them is
the primary now, each host tried for at most `connect_timeout`. After a failover the pool finds
the new primary by itself: a statement whose connection died answers 503 (`DatabaseUnavailable`;
the daemon retries, and the decision is idempotent by `eventId` and message `uuid`), the first
such loss has the pool test its idle connections at once (`_check_soon`), and a lost connection
is replaced within `RECONNECT_SECONDS` of a primary accepting connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import psycopg
import psycopg.errors
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from terragon_ingest.errors import DatabaseUnavailable, UnstorableValue

log = structlog.get_logger()

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


RECONNECT_SECONDS: Final = 5.0
"""How long the pool keeps re-trying one lost connection in the background (psycopg_pool's
`reconnect_timeout`: attempts at about 0, 1, 3 and 5 s, then it gives up, and the next request
that finds no connection starts a new series at once). Its default (5 minutes, the delay doubling
up to there) would let a failover of 30 s cost up to half a minute more before an attempt reaches
the new primary; bounded here, no two attempts are more than ~2 s apart while requests arrive."""

# Defaults a URL may override (libpq names; psycopg keeps a multi-host `host`/`port` as comma
# lists through conninfo_to_dict / make_conninfo). Keepalives: a primary whose host vanished
# without closing its sockets is noticed within ~11 s (5 + 2 * 3), and an unacknowledged send
# within 10 s, instead of the kernel's two hours; they do not apply to Unix sockets.
_FAILOVER_DEFAULTS: Final[dict[str, str]] = {
    "target_session_attrs": "read-write",  # every connection of the service writes
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def conninfo(url: str, *, connect_timeout: float) -> str:
    """`url` (one host or several) as the service connects with it: the libpq defaults above for
    what the URL leaves unset, and `connect_timeout` per host so that one connection tries every
    host within about `connect_timeout` (psycopg's default is 130 s per host; libpq's minimum is
    2 s)."""
    params = conninfo_to_dict(url)
    hosts = max(1, len(str(params.get("host") or params.get("hostaddr") or "").split(",")))
    per_host = max(2, math.ceil(connect_timeout / hosts))
    for name, value in {**_FAILOVER_DEFAULTS, "connect_timeout": str(per_host)}.items():
        params.setdefault(name, value)
    return make_conninfo("", **params)


def create_pool(
    url: str, *, min_size: int, max_size: int, timeout: float, statement_timeout: float = 0
) -> Pool:
    """A closed pool; open it with `await pool.open(wait=True)` in the lifespan. `timeout` is how
    long a request waits for a connection (`TERRAGON_DB_CONNECT_TIMEOUT`), and bounds one new
    connection over every host of the URL (`conninfo`).
    `statement_timeout` (seconds, 0 = none) bounds every statement of its connections, as a
    connection option: no round trip per statement (`TERRAGON_DB_STATEMENT_TIMEOUT`)."""
    kwargs = dict(CONNECTION_KWARGS)
    if statement_timeout > 0:
        kwargs["options"] = (
            f"{kwargs['options']} -c statement_timeout={int(statement_timeout * 1000)}"
        )
    return AsyncConnectionPool(
        conninfo(url, connect_timeout=timeout),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=kwargs,
        open=False,
        name="terragon",
        reconnect_timeout=RECONNECT_SECONDS,
    )


def connect(url: str, *, connect_timeout: float = 5.0) -> psycopg.Connection[Any]:
    """One connection outside the pool (migrations, the archive's jobs and commands), to the
    primary of `url` as the pool's are (`conninfo`), autocommit."""
    return psycopg.connect(
        conninfo(url, connect_timeout=connect_timeout),
        **CONNECTION_KWARGS,  # type: ignore[arg-type]
    )


async def connect_async(url: str, *, connect_timeout: float = 5.0) -> AsyncConn:
    """`connect`, async."""
    return await psycopg.AsyncConnection.connect(
        conninfo(url, connect_timeout=connect_timeout),
        **CONNECTION_KWARGS,  # type: ignore[arg-type]
    )


def why_unreachable(url: str, *, connect_timeout: float) -> str | None:
    """None when one connection to `url`'s primary opens; else the driver's reason, on one line
    (for an operator's command, which names the server instead of waiting out a pool's
    timeout)."""
    try:
        psycopg.connect(conninfo(url, connect_timeout=connect_timeout)).close()
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
    """A pooled connection with driver outages translated to `DatabaseUnavailable`. A connection
    found dead (its server went away: a restart, a failover) has the pool test its idle ones."""
    with translate_errors():
        async with pool.connection() as conn:
            try:
                yield conn
            finally:
                if conn.broken:  # the pool discards this one itself when it comes back
                    _check_soon(pool)


_CHECKS: weakref.WeakKeyDictionary[Pool, asyncio.Task[None]] = weakref.WeakKeyDictionary()
"""The pool check running per pool (one at a time)."""


def _check_soon(pool: Pool) -> None:
    """One connection died: the idle ones reached the same server and are likely dead too. Test
    them now (psycopg_pool's `check`: each dead one is replaced through a new connection to the
    primary), rather than let each fail a request of its own; a round trip per checkout
    (`check=` on the pool) would cost every request for what happens at a failover only."""
    running = _CHECKS.get(pool)
    if running is not None and not running.done():
        return
    _CHECKS[pool] = asyncio.get_running_loop().create_task(_check(pool), name="db_pool_check")


async def _check(pool: Pool) -> None:
    log.warning(
        "db_connection_lost",
        hint="the database server closed a connection (a restart or failover?): the idle "
        "connections are tested and replaced; requests answer 503 until a primary accepts "
        "connections",
    )
    try:
        await pool.check()
    except Exception as exc:  # a closing pool; the next lost connection tries again
        log.debug("db_pool_check_failed", error=str(exc))


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
