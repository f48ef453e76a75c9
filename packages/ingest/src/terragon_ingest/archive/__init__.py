"""The archive: rollup of quarantine rows and preview events into day-partitioned Parquet,
30-day retention of the quarantine partitions, the analysts' CLI and the in-process alert hooks."""
