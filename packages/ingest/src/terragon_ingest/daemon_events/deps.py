"""What the daemon-event domain uses: the decision's pool, Valkey (offload bookkeeping and rate
limits), the quarantine object store, the group commits and run budgets (None = off/unlimited,
as the settings or a CLI command choose) and the process's `KnownTokens` (shared with runs)."""

from __future__ import annotations

from dataclasses import dataclass

from valkey.asyncio import Valkey

from terragon_ingest.daemon_events.budgets import RunBudgets
from terragon_ingest.daemon_events.group_commit import GroupCommit, QuarantineCommit
from terragon_ingest.db import Pool
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.runs import KnownTokens
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics


@dataclass(frozen=True, slots=True)
class DaemonEventsDeps:
    settings: Settings
    pool: Pool
    valkey: Valkey
    metrics: Metrics
    objects: QuarantineObjects
    """The object store for offloaded quarantine payloads (terragon_ingest.objects)."""
    tokens: KnownTokens
    """Daemon tokens seen to resolve, checked before a body is decoded (runs.tokens)."""
    group_commit: GroupCommit | None = None
    """Grouped statements for ordinary envelopes (group_commit.py); None = off."""
    quarantine_commit: QuarantineCommit | None = None
    """Grouped statements for quarantine rows (group_commit.py); None = off."""
    budgets: RunBudgets | None = None
    """Per-run message and byte budgets (budgets.py); None = unlimited."""
