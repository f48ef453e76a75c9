"""The archive rollup: closed time slices of Postgres rows into the Parquet archive.

Incremental from a watermark per source table (`archive_watermark`), one UTC hour per step:

1. read the slice `[watermark, min(hour end, end))` from Postgres with one `COPY ... TO STDOUT`
   (several hours of the same day are read by one COPY, as many as keep a read near
   `READ_TARGET_ROWS`; a BRIN index on the time column finds the slice without reading the day);
2. rewrite that hour's rows file as (its rows before the watermark) + the slice, then the hour's
   minutely aggregates from it (temporary file + rename each); the day's daily aggregates are
   rewritten once, when the watermark leaves the day or the run ends;
3. only then advance the watermark (hour by hour);
4. once the watermark has left a day, compact that day's hour files of each dataset into one
   `day.parquet` (`files.compact_day`: one object per day for readers of a bucket). A run also
   finishes the compaction of the day before its watermark's, should the last one have stopped
   half-way (readers count such a day once meanwhile: `terragon_core.live_files`).

A crash anywhere leaves the watermark where it was; the rerun drops whatever the crashed run
wrote past the watermark and writes the slice again, so nothing is counted twice or skipped.
`end` is the last closed minute that ended `settle_seconds` ago, which leaves room for
transactions that were still in flight. One rollup at a time across replicas (advisory lock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import structlog

from terragon_core import RETAINED_TABLES, ArchiveDataset
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.location import ArchiveLocation, as_location
from terragon_ingest.db.locks import ARCHIVE_ROLLUP_LOCK
from terragon_ingest.kit.progress import NO_PROGRESS

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from terragon_ingest.kit.progress import Progress

log = structlog.get_logger()

_HOUR = timedelta(hours=1)

READ_TARGET_ROWS = 250_000
"""Rows one COPY aims for: bounds the rollup's memory while catching up on a busy day."""

_COMPACTS: dict[ArchiveDataset, tuple[ArchiveDataset, ...]] = {
    ArchiveDataset.QUARANTINE_ROWS: (
        ArchiveDataset.QUARANTINE_ROWS,
        ArchiveDataset.QUARANTINE_MINUTELY,
    ),
    ArchiveDataset.PREVIEW_EVENTS: (ArchiveDataset.PREVIEW_EVENTS,),
}
"""A source's dataset → the datasets written from it that a closed day is compacted in."""

SOURCES: Final[dict[str, ArchiveDataset]] = {t.dataset: t.archive for t in RETAINED_TABLES}
"""Watermark name (`archive_watermark.dataset`) → the dataset its rows go to."""


@dataclass(slots=True)
class RollupResult:
    locked: bool = True
    """False when another process held the rollup lock (nothing was done)."""
    end: datetime | None = None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied per source in this run."""
    days: set[date] = field(default_factory=set)
    """Days whose quarantine aggregates were rewritten."""


def floor_minute(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rollup(
    conn: repository.Conn,
    root: Path | ArchiveLocation,
    *,
    settle_seconds: int,
    until: datetime | None = None,
    progress: Progress = NO_PROGRESS,
) -> RollupResult:
    """Roll every source up to the last closed minute (or `until`, if earlier) into the archive
    at `root` (a local directory or a bucket, `location.py`).

    Safe to run at any time, any number of times."""
    where = as_location(root)
    try:
        return _rollup(conn, where, settle_seconds=settle_seconds, until=until, progress=progress)
    finally:
        where.close()


def _rollup(
    conn: repository.Conn,
    root: ArchiveLocation,
    *,
    settle_seconds: int,
    until: datetime | None = None,
    progress: Progress = NO_PROGRESS,
) -> RollupResult:
    with repository.advisory_lock(conn, ARCHIVE_ROLLUP_LOCK) as held:
        if not held:
            log.info("archive_rollup_skipped", reason="another process holds the rollup lock")
            return RollupResult(locked=False)
        end = floor_minute(repository.fetch_now(conn) - timedelta(seconds=settle_seconds))
        if until is not None:
            end = min(end, floor_minute(until))
        result = RollupResult(end=end)
        con = files.connect()
        try:
            for name, dataset in SOURCES.items():
                result.rows[name] = _rollup_source(
                    conn, con, root, name, dataset, end, result, progress
                )
        finally:
            con.close()
    if any(result.rows.values()):
        log.info("archive_rolled_up", end=end.isoformat(), rows=result.rows, root=root.description)
    return result


def _rollup_source(
    conn: repository.Conn,
    con: duckdb.DuckDBPyConnection,
    root: ArchiveLocation,
    name: str,
    dataset: ArchiveDataset,
    end: datetime,
    result: RollupResult,
    progress: Progress = NO_PROGRESS,
) -> int:
    watermark = repository.fetch_watermark(conn, name)
    if watermark is None:
        first = repository.fetch_first_at(conn, dataset, datetime.min.replace(tzinfo=UTC))
        repository.insert_watermark(conn, name, floor_hour(first) if first else end)
        watermark = repository.fetch_watermark(conn, name)
        assert watermark is not None
    if dataset is ArchiveDataset.QUARANTINE_ROWS and root.any_file(
        files.day_dir(ArchiveDataset.QUARANTINE_MINUTELY, watermark.date())
    ):
        result.days.add(watermark.date())  # a crashed run may have left its daily file behind
    _compact(con, root, dataset, watermark.date() - timedelta(days=1))  # one cut short, if any
    copied = 0
    span = 1  # hours per COPY, adapted to the rows per hour seen so far
    if watermark < end:
        progress.start(f"rollup {name} (hours)", (end - watermark) / _HOUR)
    while watermark < end:
        hour = floor_hour(watermark)
        day_end = datetime.combine(hour.date() + timedelta(days=1), datetime.min.time(), UTC)
        read_hi = min(hour + span * _HOUR, day_end, end)
        rows = repository.export_rows(conn, dataset, watermark, read_hi)
        copied += rows.num_rows
        hours = max(1, round((read_hi - watermark) / _HOUR))
        span = max(1, min(24, READ_TARGET_ROWS * hours // max(rows.num_rows, 1)))
        present = files.hours_with_rows(con, dataset, rows)
        while watermark < read_hi:
            hour = floor_hour(watermark)
            hi = min(hour + _HOUR, read_hi)
            _write_hour(con, root, dataset, hour, watermark, rows, hi, hour in present, result)
            nxt = hi
            if hi == read_hi and hi < end and rows.num_rows == 0:
                # skip the empty hours up to the next row, if any
                first = repository.fetch_first_at(conn, dataset, hi)
                nxt = min(floor_hour(first), end) if first else end
                nxt = max(nxt, hi)
            # The day's aggregates are rewritten before the watermark leaves the day, and at the
            # end of every run: a crash in between leaves the watermark inside the day, so the
            # rerun rewrites them again.
            if hour.date() in result.days and (nxt >= end or nxt.date() != hour.date()):
                files.write_daily(con, root, hour.date())
            repository.advance_watermark(conn, name, watermark, nxt)
            if nxt.date() != hour.date():  # the day has closed: its files are final
                _compact(con, root, dataset, hour.date())
            progress.advance((nxt - watermark) / _HOUR)
            watermark = nxt
    return copied


def _compact(
    con: duckdb.DuckDBPyConnection,
    root: ArchiveLocation,
    dataset: ArchiveDataset,
    day: date,
    *,
    rebuilt: bool = False,
) -> None:
    for target in _COMPACTS[dataset]:
        if written := files.compact_day(con, root, target, day, rebuilt=rebuilt):
            log.debug("archive_day_compacted", file=written)


def _write_hour(
    con: duckdb.DuckDBPyConnection,
    root: ArchiveLocation,
    dataset: ArchiveDataset,
    hour: datetime,
    watermark: datetime,
    rows: pa.Table,
    until: datetime,
    has_rows: bool,
    result: RollupResult,
) -> None:
    """Rewrite `hour`'s files with its part `[watermark, until)` of `rows`."""
    exists = root.exists(files.hour_file(dataset, hour))
    if not has_rows and not exists:
        return
    files.merge_hour(con, root, dataset, hour, watermark, rows, until)
    if dataset is ArchiveDataset.QUARANTINE_ROWS:
        files.write_minutely(con, root, hour)
        result.days.add(hour.date())


@dataclass(frozen=True, slots=True)
class DayChange:
    """What a rebuild does to one dataset of a day: the archive holds `archived` rows of it,
    PostgreSQL `stored` (up to the watermark), and the rebuild replaces the first with the second."""

    dataset: ArchiveDataset
    archived: int
    stored: int

    @property
    def lost(self) -> int:
        """Archived rows that PostgreSQL no longer holds: what the rebuild would erase."""
        return max(self.archived - self.stored, 0)

    def describe(self) -> str:
        delta = self.stored - self.archived
        return f"{self.dataset.value}: {self.archived} archived -> {self.stored} ({delta:+d})"


@dataclass(frozen=True, slots=True)
class RebuildPlan:
    day: date
    changes: tuple[DayChange, ...]

    @property
    def lost(self) -> int:
        return sum(c.lost for c in self.changes)

    @property
    def rows(self) -> int:
        """Rows the day holds after the rebuild, over every dataset."""
        return sum(c.stored for c in self.changes)


class ShrinkRefused(Exception):
    """A rebuild would replace a day with fewer rows than the archive holds (CONTRACT §7: no
    command loses data on a hint). Nothing was written."""

    def __init__(self, plan: RebuildPlan) -> None:
        self.plan = plan
        shrinking = "; ".join(c.describe() for c in plan.changes if c.lost)
        super().__init__(
            f"refusing to rebuild {plan.day}: PostgreSQL no longer holds {plan.lost} archived "
            f"row(s) of that day ({shrinking}); nothing was changed. The archive may be the only "
            "copy left (rows past retention, or history written straight to the archive). Only "
            "if PostgreSQL is right, rerun with --allow-shrink: those rows leave the archive."
        )


def rebuild_day(
    conn: repository.Conn,
    where: Path | ArchiveLocation,
    day: date,
    *,
    allow_shrink: bool = False,
    dry_run: bool = False,
    progress: Progress = NO_PROGRESS,
) -> RebuildPlan:
    """Rewrite a whole day's archived hours from Postgres (for a day that failed to reconcile,
    e.g. after a transaction committed rows later than the settle window).

    Counts first: a day that would end up with fewer rows than the archive holds is refused
    (`ShrinkRefused`, nothing written) unless `allow_shrink`; `dry_run` only counts. Returns the
    plan (what the archive held, what it holds now)."""
    root = as_location(where)
    try:
        with repository.advisory_lock(conn, ARCHIVE_ROLLUP_LOCK) as held:
            if not held:
                raise RuntimeError("another process holds the rollup lock; retry in a minute")
            plan = plan_rebuild(conn, root, day)
            if dry_run:
                return plan
            if plan.lost and not allow_shrink:
                raise ShrinkRefused(plan)
            _rebuild_day(conn, root, day, progress)
            log.info(
                "archive_day_rebuilt",
                day=day.isoformat(),
                rows=plan.rows,
                changes=[c.describe() for c in plan.changes],
            )
            return plan
    finally:
        root.close()


def plan_rebuild(conn: repository.Conn, root: ArchiveLocation, day: date) -> RebuildPlan:
    """What a rebuild of `day` would change, per dataset (counts only, nothing written)."""
    changes = []
    for name, dataset in SOURCES.items():
        watermark = repository.fetch_watermark(conn, name)
        if watermark is None:
            continue
        lo, hi = _day_bounds(day)
        stored = (
            repository.count_rows(conn, dataset, lo, min(hi, watermark)) if lo < watermark else 0
        )
        changes.append(DayChange(dataset, files.archived_rows(root, dataset, day), stored))
    return RebuildPlan(day, tuple(changes))


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return lo, lo + timedelta(days=1)


def _rebuild_day(
    conn: repository.Conn, root: ArchiveLocation, day: date, progress: Progress
) -> None:
    start, _ = _day_bounds(day)
    con = files.connect()
    try:
        progress.start(f"rebuilding {day}", 24 * len(SOURCES))
        for name, dataset in SOURCES.items():
            watermark = repository.fetch_watermark(conn, name)
            result = RollupResult()
            for step in range(24):
                hour = start + step * _HOUR
                progress.advance()
                if watermark is None or hour >= watermark:
                    continue
                hi = min(hour + _HOUR, watermark)
                rows = repository.export_rows(conn, dataset, hour, hi)
                # keep nothing of the old file: the hour is re-read whole
                _write_hour(con, root, dataset, hour, hour, rows, hi, rows.num_rows > 0, result)
            if watermark is not None and watermark.date() > day:  # a closed day: compact it
                compacted = root.exists(files.compact_file(dataset, day))
                _compact(con, root, dataset, day, rebuilt=True)
                if compacted and dataset is ArchiveDataset.QUARANTINE_ROWS:
                    result.days.add(day)  # its aggregates follow the rebuilt day, even empty
            if day in result.days:
                files.write_daily(con, root, day)
    finally:
        con.close()
