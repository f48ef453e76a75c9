"""What the runs domain uses. `tokens` is the process's one `KnownTokens` (the daemon-event
route reads it too, through `DaemonEventsDeps`); `access` is how a run start invalidates cached
repo access (access owns the only invalidation path)."""

from __future__ import annotations

from dataclasses import dataclass

from terragon_ingest.access import AccessDeps
from terragon_ingest.db import Pool
from terragon_ingest.runs.tokens import KnownTokens
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics


@dataclass(frozen=True, slots=True)
class RunsDeps:
    settings: Settings
    pool: Pool
    metrics: Metrics
    tokens: KnownTokens
    access: AccessDeps
