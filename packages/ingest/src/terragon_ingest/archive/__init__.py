"""The archive: rollup of quarantine rows and preview events into day-partitioned Parquet,
retention (the only purge of the retained tables: seal once, purge on the seal), where its files
live (`location.py`) and its CLI (`terragon archive|retention`)."""
