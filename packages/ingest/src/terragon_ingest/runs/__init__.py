"""Runs: threads, run rows, the run-context pointer and its writers, flags, daemon tokens.

Other domains import what they use from here, never from a module inside (an import-linter
contract in pyproject.toml).
"""

from __future__ import annotations

from terragon_ingest.runs.deps import RunsDeps
from terragon_ingest.runs.repository import fetch_run, fetch_run_context, fetch_thread
from terragon_ingest.runs.service import finalize_stale_runs, record_missing_end_sha
from terragon_ingest.runs.tokens import (
    KnownTokens,
    TokenBinding,
    TokenRefused,
    hash_token,
    resolve_daemon_token,
)

__all__ = [
    "KnownTokens",
    "RunsDeps",
    "TokenBinding",
    "TokenRefused",
    "fetch_run",
    "fetch_run_context",
    "fetch_thread",
    "finalize_stale_runs",
    "hash_token",
    "record_missing_end_sha",
    "resolve_daemon_token",
]
