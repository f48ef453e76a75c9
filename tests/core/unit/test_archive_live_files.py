"""`live_files`: which of an archive's files readers read. A compacted day is its `day.parquet`
alone, even with hour files left beside it (a compaction cut short), so nothing counts twice."""

from __future__ import annotations

from terragon_core import COMPACT_FILE, live_files


def test_a_compacted_day_is_its_day_file_alone_and_other_days_keep_their_hours() -> None:
    files = [
        "a/quarantine_rows/day=2026-12-01/hour=00.parquet",
        f"a/quarantine_rows/day=2026-12-01/{COMPACT_FILE}",
        "a/quarantine_rows/day=2026-12-01/hour=07.parquet",
        "a/quarantine_rows/day=2026-12-02/hour=07.parquet",
        "a/quarantine_rows/day=2026-12-02/hour=00.parquet",
        "a/quarantine_daily/day=2026-12-01/daily.parquet",
    ]
    assert live_files(files) == [
        "a/quarantine_daily/day=2026-12-01/daily.parquet",
        f"a/quarantine_rows/day=2026-12-01/{COMPACT_FILE}",
        "a/quarantine_rows/day=2026-12-02/hour=00.parquet",
        "a/quarantine_rows/day=2026-12-02/hour=07.parquet",
    ]


def test_temporary_and_foreign_files_are_never_read() -> None:
    files = [
        "quarantine_rows/day=2026-12-01/.hour=00.parquet.123.tmp",
        "quarantine_rows/day=2026-12-01/notes.txt",
        "quarantine_rows/day=2026-12-01/hour=01.parquet",
    ]
    assert live_files(files) == ["quarantine_rows/day=2026-12-01/hour=01.parquet"]
    assert live_files([]) == []
