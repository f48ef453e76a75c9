"""What the archive's periodic jobs use (the CLI calls the blocking bodies with settings alone)."""

from __future__ import annotations

from dataclasses import dataclass

from terragon_ingest.db import Pool
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics


@dataclass(frozen=True, slots=True)
class ArchiveDeps:
    settings: Settings
    pool: Pool
    metrics: Metrics
    objects: QuarantineObjects
