"""Retention: quarantine rows live `QUARANTINE_RETENTION_DAYS` (30) days (CONTRACT §4).

A day leaves Postgres only when the archive is known to hold it:

1. the rollup's watermark is past the day's end;
2. the archive's daily aggregates match Postgres's counts exactly for every (reason, repo,
   user, provider), and the archive holds as many rows as Postgres. Checked cheaply: Postgres's
   exact `count(*)` of the day must equal the archive's row count and the sum of its daily
   aggregates (per group, from the rows the rollup copied). Quarantine rows are only ever
   inserted (replay updates no dimension; only this purge deletes), so equal totals mean no row
   arrived after the rollup copied the day, hence equal per-group counts. When the totals
   differ, Postgres's per-group counts are computed to say which groups differ. The cost grows
   with the day's rows only through that `count(*)`, not through a GROUP BY over raw rows;
3. then, in one transaction, a `preview.quarantine.purge` event with per-reason totals is
   emitted and the day's partition is detached and dropped (rows that fell into the DEFAULT
   partition are deleted); `preview_quarantine_purge_total` counts the rows by reason;
4. afterwards the day's offloaded payload objects are deleted.

A day that does not reconcile is kept and logged with what to do. `dry_run` reports the plan.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from terragon_core import (
    QUARANTINE_PURGE_EVENT,
    QUARANTINE_RETENTION_DAYS,
    ArchiveDataset,
    EventOrigin,
    MetricName,
)
from terragon_ingest import telemetry
from terragon_ingest.archive import files, repository
from terragon_ingest.db.locks import ARCHIVE_ROLLUP_LOCK, RETENTION_PURGE_LOCK

if TYPE_CHECKING:
    from terragon_ingest.archive.location import ArchiveLocation
    from terragon_ingest.db import AsyncConn
    from terragon_ingest.objects import QuarantineObjects
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()


@dataclass(slots=True)
class DayPlan:
    """What retention found for one day past retention, and what it did."""

    day: date
    partition: str | None
    """The day's partition table, if it exists (else the rows are in DEFAULT)."""
    rows: int
    by_reason: dict[str, int]
    archived_rows: int
    reconciled: bool
    problem: str | None = None
    objects: list[str] = field(default_factory=list)
    purged: bool = False


def cutoff_day(today: date) -> date:
    """Days strictly before this one are past retention (their last row is over 30 days old)."""
    return today - timedelta(days=QUARANTINE_RETENTION_DAYS)


def _bounds(day: date) -> tuple[datetime, datetime]:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return lo, lo + timedelta(days=1)


async def _try_lock(conn: AsyncConn, key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _unlock(conn: AsyncConn, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _archived_groups(
    root: Path | ArchiveLocation, day: date
) -> tuple[dict[repository.GroupKey, int], int]:
    """The archive's per-group totals and row count for `day` (blocking: run in a thread)."""
    con = files.open_archive(root)
    try:
        groups = {
            (r[0], r[1], r[2], r[3]): int(r[4])
            for r in con.execute(
                f"SELECT reason, repo_full_name, user_id, sandbox_provider, sum(quarantined) "
                f"FROM {ArchiveDataset.QUARANTINE_DAILY} WHERE day = ? GROUP BY ALL",
                [day],
            ).fetchall()
        }
        row = con.execute(
            f"SELECT count(*) FROM {ArchiveDataset.QUARANTINE_ROWS} WHERE day = ?", [day]
        ).fetchone()
        return groups, int(row[0]) if row else 0
    finally:
        con.close()


async def plan_day(
    conn: AsyncConn, root: Path | ArchiveLocation, day: date, partition: str | None
) -> DayPlan:
    lo, hi = _bounds(day)
    rows = await repository.count_quarantine_day(conn, lo, hi)
    archived, archived_rows = await asyncio.to_thread(_archived_groups, root, day)
    plan = DayPlan(day, partition, rows, _by_reason(archived), archived_rows, reconciled=False)
    watermark = await repository.fetch_watermark_async(conn, "quarantine")
    if watermark is None or watermark < hi:
        plan.problem = "the rollup has not passed this day yet"
    elif rows != archived_rows or sum(archived.values()) != archived_rows:
        groups = await repository.count_quarantine_groups(conn, lo, hi)
        plan.by_reason = _by_reason(groups)
        if archived != groups:
            missing = {k: v for k, v in groups.items() if archived.get(k) != v}
            plan.problem = f"archive aggregates differ from Postgres for {len(missing)} group(s)"
        else:
            plan.problem = f"archive holds {archived_rows} rows, Postgres {rows}"
    else:
        plan.reconciled = True
        plan.objects = await repository.fetch_quarantine_object_keys(conn, lo, hi)
    return plan


def _by_reason(groups: dict[repository.GroupKey, int]) -> dict[str, int]:
    by_reason: Counter[str] = Counter()
    for (reason, *_), n in groups.items():
        by_reason[reason] += n
    return dict(by_reason)


async def plan_purge(conn: AsyncConn, root: Path | ArchiveLocation, today: date) -> list[DayPlan]:
    """Every day past retention that still has rows or a partition, oldest first."""
    cutoff = cutoff_day(today)
    partitions: dict[date, str] = {}
    for name in await repository.list_quarantine_partitions(conn):
        day = datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").date()
        if day < cutoff:
            partitions[day] = name
    default_days = await repository.list_default_quarantine_days(conn, _bounds(cutoff)[0])
    days = sorted(set(partitions) | set(default_days))
    return [await plan_day(conn, root, day, partitions.get(day)) for day in days]


async def purge(
    conn: AsyncConn,
    *,
    archive_root: Path | ArchiveLocation,
    store: QuarantineObjects | None,
    metrics: Metrics,
    today: date | None = None,
    dry_run: bool = False,
) -> list[DayPlan]:
    """Purge every reconciled day past retention (or, with `dry_run`, say what would go)."""
    today = today or datetime.now(UTC).date()
    if not await _try_lock(conn, RETENTION_PURGE_LOCK):
        log.info("retention_skipped", reason="another process holds the retention lock")
        return []
    try:
        # No rollup may rewrite the archive between the reconciliation and the drop.
        if not await _try_lock(conn, ARCHIVE_ROLLUP_LOCK):
            log.info("retention_skipped", reason="the archive rollup is running; next interval")
            return []
        try:
            plans = await plan_purge(conn, archive_root, today)
            for plan in plans:
                if not plan.reconciled:
                    log.warning(
                        "retention_day_kept",
                        day=plan.day.isoformat(),
                        rows=plan.rows,
                        problem=plan.problem,
                        hint=f"run `terragon archive rollup --rebuild-day {plan.day}` and retry",
                    )
                elif not dry_run:
                    await _purge_day(conn, plan, metrics)
        finally:
            await _unlock(conn, ARCHIVE_ROLLUP_LOCK)
    finally:
        await _unlock(conn, RETENTION_PURGE_LOCK)
    if store is not None and not dry_run:
        for plan in plans:
            if plan.purged and plan.objects:
                await store.delete_many(plan.objects)
    return plans


async def _purge_day(conn: AsyncConn, plan: DayPlan, metrics: Metrics) -> None:
    lo, hi = _bounds(plan.day)
    event = telemetry.build_event(
        QUARANTINE_PURGE_EVENT,
        origin=EventOrigin.PREVIEW_MAINTENANCE,
        trace_id=telemetry.trace_id_from(None),
        thread_id=None,
        thread_chat_id=None,
        run_id=None,
        codesandbox_id=None,
        sandbox_provider=None,
        properties={
            "day": plan.day.isoformat(),
            "rows": plan.rows,
            "byReason": plan.by_reason,
            "archivedRows": plan.archived_rows,
            "partition": plan.partition,
            "objects": len(plan.objects),
        },
    )
    async with conn.transaction():
        await telemetry.emit_event(conn, event)
        if plan.partition:
            await repository.drop_quarantine_partition(conn, plan.partition)
        await repository.delete_default_quarantine_day(conn, lo, hi)
    plan.purged = True
    for reason, n in plan.by_reason.items():
        metrics.inc(
            MetricName.QUARANTINE_PURGE,
            repo=None,
            user=None,
            provider=None,
            reason=reason,
            amount=n,
        )
    log.info(
        "retention_day_purged",
        day=plan.day.isoformat(),
        rows=plan.rows,
        by_reason=plan.by_reason,
        partition=plan.partition,
    )
