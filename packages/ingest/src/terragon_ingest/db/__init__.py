"""Postgres access: the pool, the migration runner, advisory-lock keys, query loading."""

from __future__ import annotations

from terragon_ingest.db.pool import (
    AsyncConn,
    Pool,
    connect,
    connect_async,
    connection,
    conninfo,
    create_pool,
    translate_errors,
    unbounded,
    why_unreachable,
)
from terragon_ingest.db.queries import load_queries

__all__ = [
    "AsyncConn",
    "Pool",
    "connect",
    "connect_async",
    "connection",
    "conninfo",
    "create_pool",
    "load_queries",
    "translate_errors",
    "unbounded",
    "why_unreachable",
]
