"""What the scheduler hands the periodic jobs: its own pool (slot claims, partitions) and the
deps of the domains whose jobs it paces."""

from __future__ import annotations

from dataclasses import dataclass

from terragon_ingest.archive import ArchiveDeps
from terragon_ingest.daemon_events import DaemonEventsDeps
from terragon_ingest.db import Pool


@dataclass(frozen=True, slots=True)
class LifecycleDeps:
    pool: Pool
    daemon_events: DaemonEventsDeps
    archive: ArchiveDeps
