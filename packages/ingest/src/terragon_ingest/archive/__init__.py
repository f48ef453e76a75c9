"""The archive: rollup of quarantine rows and preview events into day-partitioned Parquet,
retention (the only purge of the retained tables: seal once, purge on the seal), where its files
live (`location.py`) and its CLI (`terragon archive|retention`).

Other domains import what they use from here; the one exception is `lifecycle/jobs.py`, which
registers the jobs of `tasks.py` (kept out of this package's imports: it loads pyarrow and
duckdb, which every `terragon` command would then pay for).
"""

from __future__ import annotations

from terragon_ingest.archive.deps import ArchiveDeps
from terragon_ingest.archive.options import archive_dir_option, archive_url_option, with_archive

__all__ = ["ArchiveDeps", "archive_dir_option", "archive_url_option", "with_archive"]
