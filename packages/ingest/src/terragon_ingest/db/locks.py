"""Postgres advisory lock keys: one per job that must run once across replicas."""

from __future__ import annotations

from typing import Final

MIGRATION_LOCK: Final = 7_301_001
MAINTENANCE_SWEEP_LOCK: Final = 7_301_002
ARCHIVE_ROLLUP_LOCK: Final = 7_301_003
RETENTION_PURGE_LOCK: Final = 7_301_004
