"""The archive: rollup of quarantine rows and preview events into day-partitioned Parquet,
30-day retention of the quarantine partitions, the analysts' CLI and the in-process alert hooks.

Other domains import what they use from here; the one exception is `lifecycle/jobs.py`, which
registers the jobs of `tasks.py` (kept out of this package's imports: it loads pyarrow and
duckdb, which every `terragon` command would then pay for).
"""

from __future__ import annotations

from terragon_ingest.archive.deps import ArchiveDeps

__all__ = ["ArchiveDeps"]
