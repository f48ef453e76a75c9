"""Retention: quarantine rows live `QUARANTINE_RETENTION_DAYS` (30) days (CONTRACT §4); preview
events `PREVIEW_EVENT_RETENTION_DAYS` (the contract names no period for them: the quarantine's 30);
GitHub webhook digests `WEBHOOK_DIGEST_RETENTION_DAYS` (30, CONTRACT §5).

Webhook digests are `EXPIRING`, not among core's `RETAINED_TABLES`: nothing of them is archived,
so at the end of the same run, under the same locks, their rows before the cutoff day are deleted
(one plan per table, when it deletes anything). The sections below are about the archived tables.

A day leaves Postgres only when the archive is known to hold it, for both tables alike:

1. the rollup's watermark is past the day's end;
2. the archive holds exactly the day's rows: Postgres's exact `count(*)` of the day equals the
   archive's row count and the sum of its groups (quarantine: the daily aggregates per
   (reason, repo, user, provider); preview events: rows per event name). Both tables are
   insert-only before retention (a replay updates no archived column; only this purge deletes),
   so equal totals mean no row arrived after the rollup copied the day, hence equal groups. When
   the totals differ, Postgres's groups are computed to say which differ;
3. then, in one transaction, a purge event with the day's breakdown is emitted
   (`preview.quarantine.purge` / `preview.event.purge`) and the day's partition is dropped (rows
   that fell into the DEFAULT partition are deleted); a counter counts the rows;
4. afterwards the day's offloaded payload objects are deleted (quarantine).

**Seals: the count is taken once, not at purge.** Step 2 runs when retention first finds a day
partition archived (every run seals the closed days it has not sealed yet, so within an hour of
the rollup leaving the day, ~29 days before its purge) and its result is stored as the day's seal
(`archive_day_seal`: its rows, the purge event's breakdown, and the archive's fingerprint: row
count from the Parquet footers + digest of the day's aggregates). At purge a sealed day needs no
count: its seal still existing proves Postgres still holds exactly what was counted, and the
archive's fingerprint is taken again and compared (a different one, e.g. after a rebuild wrote
other bytes, sends the day through the exact reconciliation again). Why a seal is exact:

- sealing runs in one transaction that first takes SHARE ROW EXCLUSIVE on the partition: that
  waits for every transaction still writing to it (a writer holds ROW EXCLUSIVE until it ends)
  and holds off new writers until the seal commits. The count, run after the lock (LOCK TABLE
  comes first, so even a REPEATABLE READ snapshot would be taken after it), sees every row ever
  committed to the partition;
- the same transaction creates triggers on the partition that delete its seal row on any later
  INSERT, DELETE, TRUNCATE or UPDATE of an archived column (a replay's `replayed_at` /
  `replay_status` are not archived and do not break it). The trigger runs inside the writer's
  transaction: the write and the loss of the seal commit together or not at all;
- the seal names the partition by OID, so a partition dropped and re-created has no seal; a row of
  the day cannot sit anywhere else (PostgreSQL routes every row of the day's range to the
  partition, and refuses the partition while DEFAULT holds rows of its range);
- the purge transaction locks the partition (ACCESS EXCLUSIVE) before it deletes the seal row and
  checks its count, so no write can slip between that check and the DROP.

Only someone who disables triggers (superuser: `session_replication_role = replica`, `DISABLE
TRIGGER`) can write to a sealed partition unseen — as they could bypass any constraint.

A day that does not reconcile is kept (and not sealed) and logged with what to do. `dry_run`
reports the plan and changes nothing (it seals nothing: unsealed days are counted as before).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import structlog

from terragon_core import (
    ARCHIVE_COLUMNS,
    PREVIEW_EVENT_TABLE,
    QUARANTINE_RETENTION_DAYS,
    QUARANTINE_TABLE,
    RETAINED_TABLES,
    WEBHOOK_DIGEST_RETENTION_DAYS,
    EventOrigin,
    RetainedTable,
)
from terragon_ingest import telemetry
from terragon_ingest.archive import files, repository
from terragon_ingest.archive.location import as_location
from terragon_ingest.archive.repository import DayPartition, GroupKey
from terragon_ingest.db.locks import ARCHIVE_ROLLUP_LOCK, RETENTION_PURGE_LOCK
from terragon_ingest.kit.progress import NO_PROGRESS

if TYPE_CHECKING:
    from terragon_ingest.archive.location import ArchiveLocation
    from terragon_ingest.db import AsyncConn
    from terragon_ingest.kit.progress import Progress
    from terragon_ingest.objects import QuarantineObjects
    from terragon_ingest.telemetry import Metrics

log = structlog.get_logger()

SEAL_LOCK_TIMEOUT_MS: Final = 5_000
"""How long sealing waits for writers of a closed day to finish before trying next run."""
DROP_LOCK_TIMEOUT_MS: Final = 10_000
"""How long a purge waits for the partition and its table (ingest holds them for milliseconds)."""

_BY_DATASET: Final = {r.dataset: r for r in RETAINED_TABLES}


@dataclass(frozen=True, slots=True)
class Expiring:
    """A table whose rows expire `days` after their time (the column its `delete_expired_<table>`
    query names); nothing is archived first."""

    table: str
    days: int


WEBHOOK_DIGESTS: Final = Expiring("github_webhook_delivery", WEBHOOK_DIGEST_RETENTION_DAYS)
"""Kept 30 days: a body applied in that time is a `duplicate` under any delivery id."""
EXPIRING: Final = (WEBHOOK_DIGESTS,)


@dataclass(slots=True)
class DayPlan:
    """What retention found for one day past retention, and what it did."""

    dataset: str
    """`quarantine` or `preview_event` (`RetainedTable.dataset`), or an `Expiring.table`."""
    day: date
    """For an `Expiring` table: the last day whose rows go (every earlier one goes too)."""
    partition: str | None
    """The day's partition table, if it exists (else the rows are in DEFAULT)."""
    rows: int
    breakdown: dict[str, int]
    """Rows by reason (quarantine) or by event name (preview events)."""
    archived_rows: int
    reconciled: bool
    sealed: bool = False
    """Counted when it was sealed (no count at purge)."""
    problem: str | None = None
    objects: list[str] = field(default_factory=list)
    purged: bool = False


@dataclass(frozen=True, slots=True)
class ArchivedDay:
    """What the archive holds of one day: its row count, its rows per group (None when not
    read), and a fingerprint of both that is cheap to take again."""

    rows: int
    groups: dict[GroupKey, int] | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SealResult:
    dataset: str
    day: date
    partition: str
    rows: int
    problem: str | None
    """Why the day was not sealed (None: sealed)."""


def cutoff_day(today: date, days: int = QUARANTINE_RETENTION_DAYS) -> date:
    """Days strictly before this one are past retention (their last row is over `days` old)."""
    return today - timedelta(days=days)


def _bounds(day: date) -> tuple[datetime, datetime]:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return lo, lo + timedelta(days=1)


def _hint(day: date, where: str) -> str:
    # Safe as printed: the rebuild shows its counts and refuses to leave fewer rows archived;
    # `where` names this installation (`installation_flags`), so it runs from any directory.
    return (
        f"run `uv run terragon archive rollup --rebuild-day {day}{where} --dry-run` to see what a "
        "rebuild from Postgres changes; without --dry-run it rewrites the day (it refuses to drop "
        "archived rows), then retry"
    )


@asynccontextmanager
async def _locked(conn: AsyncConn) -> AsyncIterator[bool]:
    """Hold the retention lock and the rollup lock (no rollup may rewrite the archive between a
    reconciliation and the drop); yield False, holding nothing, when either is taken."""
    if not await _try_lock(conn, RETENTION_PURGE_LOCK):
        log.info("retention_skipped", reason="another process holds the retention lock")
        yield False
        return
    try:
        if not await _try_lock(conn, ARCHIVE_ROLLUP_LOCK):
            log.info("retention_skipped", reason="the archive rollup is running; next interval")
            yield False
            return
        try:
            yield True
        finally:
            await _unlock(conn, ARCHIVE_ROLLUP_LOCK)
    finally:
        await _unlock(conn, RETENTION_PURGE_LOCK)


async def _try_lock(conn: AsyncConn, key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _unlock(conn: AsyncConn, key: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# ---------------------------------------------------------------- the archive's side


def archived_day(
    root: Path | ArchiveLocation, retained: RetainedTable, day: date, *, groups: bool = True
) -> ArchivedDay:
    """What the archive holds of `day` (blocking: run it in a thread). Reads that day's files
    only, and never their rows: the row count from the Parquet footers; the groups from the small
    daily aggregates file (quarantine) or the event-name column (preview events). The fingerprint
    is the row count with the digest of the daily file's bytes (quarantine) or of the groups
    (preview events): equal fingerprints mean the archive holds the same rows count and groups.
    PyArrow, not DuckDB: opening a DuckDB costs more than the whole read (≈0.1 s)."""
    import pyarrow.parquet as pq

    where = as_location(root)  # a bucket's hour files are fetched once per run (local_copies)
    hours = where.local_copies(files.day_dir(retained.archive, day))
    if retained is PREVIEW_EVENT_TABLE:
        counts: Counter[str] = Counter()
        for path in hours:
            column = pq.read_table(path, columns=["event_name"]).column("event_name")
            for item in column.value_counts().to_pylist():
                counts[str(item["values"])] += int(item["counts"])
        rows = sum(counts.values())
        found: dict[GroupKey, int] = {(name,): n for name, n in counts.items()}
        return ArchivedDay(rows, found, _digest(rows, repr(sorted(counts.items())).encode()))
    rows = sum(pq.read_metadata(path).num_rows for path in hours)
    daily = files.daily_file(day)
    content = where.local_copy(daily).read_bytes() if where.exists(daily) else b""
    if not groups:
        return ArchivedDay(rows, None, _digest(rows, content))
    found = {}
    if content:
        keys = ["reason", "repo_full_name", "user_id", "sandbox_provider"]
        table = pq.read_table(pa.BufferReader(content), columns=[*keys, "quarantined"])
        for row in table.group_by(keys).aggregate([("quarantined", "sum")]).to_pylist():
            found[tuple(row[k] for k in keys)] = int(row["quarantined_sum"])
    return ArchivedDay(rows, found, _digest(rows, content))


def _digest(rows: int, content: bytes) -> str:
    return f"{rows}:{hashlib.sha256(content).hexdigest()}"


async def _archived(
    root: Path | ArchiveLocation, retained: RetainedTable, day: date, *, groups: bool = True
) -> ArchivedDay:
    return await asyncio.to_thread(archived_day, root, retained, day, groups=groups)


async def _reconcile(
    conn: AsyncConn, retained: RetainedTable, day: date, archived: ArchivedDay
) -> tuple[int, dict[GroupKey, int], str | None]:
    """Postgres's exact count of `day` against the archive: (rows, groups, problem or None)."""
    lo, hi = _bounds(day)
    archived_groups = archived.groups or {}
    rows = await repository.count_day(conn, retained.table, lo, hi)
    if rows == archived.rows and sum(archived_groups.values()) == archived.rows:
        return rows, archived_groups, None
    groups = await repository.count_groups(conn, retained.table, lo, hi)
    if groups != archived_groups:
        differ = [
            k
            for k in groups.keys() | archived_groups.keys()
            if groups.get(k) != archived_groups.get(k)
        ]
        return (
            rows,
            groups,
            f"archive differs from Postgres in {len(differ)} group(s): "
            f"{archived.rows} rows archived, {rows} in Postgres",
        )
    return rows, groups, f"archive holds {archived.rows} rows, Postgres {rows}"


def _breakdown(groups: dict[GroupKey, int]) -> dict[str, int]:
    by_first: Counter[str] = Counter()
    for key, n in groups.items():
        by_first[str(key[0])] += n
    return dict(by_first)


# ---------------------------------------------------------------- seals


class _NotSealed(Exception):
    pass


Partitions = dict[str, list[DayPartition]]
"""Each retained table's day partitions (`RetainedTable.dataset` → partitions), listed once a run."""


async def _list_partitions(conn: AsyncConn) -> Partitions:
    return {r.dataset: await repository.list_day_partitions(conn, r.table) for r in RETAINED_TABLES}


async def seal_closed_days(
    conn: AsyncConn,
    archive_root: Path | ArchiveLocation,
    progress: Progress = NO_PROGRESS,
    where: str = "",
) -> list[SealResult]:
    """Seal every archived day partition not sealed yet (what each retention run does first).
    Returns nothing when another process holds the retention or rollup lock."""
    async with _locked(conn) as held:
        if not held:
            return []
        partitions = await _list_partitions(conn)
        return await _seal_closed_days(conn, archive_root, partitions, progress, where)


async def _seal_closed_days(
    conn: AsyncConn,
    root: Path | ArchiveLocation,
    partitions: Partitions,
    progress: Progress,
    where: str,
) -> list[SealResult]:
    """Seal the closed, unsealed days of `partitions`, recording each new seal in it."""
    todo: list[tuple[RetainedTable, int]] = []
    for retained in RETAINED_TABLES:
        watermark = await repository.fetch_watermark_async(conn, retained.dataset)
        if watermark is None:
            continue
        for i, partition in enumerate(partitions[retained.dataset]):
            if partition.sealed_rows is None and _bounds(partition.day)[1] <= watermark:
                todo.append((retained, i))
    if todo:
        progress.start("sealing archived days", len(todo))
    results: list[SealResult] = []
    for retained, i in todo:
        listed = partitions[retained.dataset]
        result = await _seal_day(conn, root, retained, listed[i], where)
        if result.problem is None:
            listed[i] = dataclasses.replace(listed[i], sealed_rows=result.rows)
        results.append(result)
        progress.advance()
    return results


async def _seal_day(
    conn: AsyncConn,
    root: Path | ArchiveLocation,
    retained: RetainedTable,
    partition: DayPartition,
    where: str,
) -> SealResult:
    archived = await _archived(root, retained, partition.day)
    rows = 0
    try:
        async with conn.transaction():
            busy = not await repository.lock_partition(
                conn, partition.name, "SHARE ROW EXCLUSIVE", timeout_ms=SEAL_LOCK_TIMEOUT_MS
            )
            if busy:
                raise _NotSealed("its partition is still being written to; the next run retries")
            columns = [name for name, _ in ARCHIVE_COLUMNS[retained.archive]]
            await repository.create_seal_triggers(conn, partition.name, columns)
            rows, groups, problem = await _reconcile(conn, retained, partition.day, archived)
            if problem:
                raise _NotSealed(problem)
            await repository.insert_seal(
                conn,
                dataset=retained.dataset,
                day=partition.day,
                partition=partition.name,
                rows=rows,
                breakdown=_breakdown(groups),
                fingerprint=archived.fingerprint,
            )
    except _NotSealed as exc:
        log.warning(
            "retention_day_not_sealed",
            dataset=retained.dataset,
            day=partition.day.isoformat(),
            rows=rows,
            archived_rows=archived.rows,
            problem=str(exc),
            hint=_hint(partition.day, where),
        )
        return SealResult(retained.dataset, partition.day, partition.name, rows, str(exc))
    log.info(
        "retention_day_sealed", dataset=retained.dataset, day=partition.day.isoformat(), rows=rows
    )
    return SealResult(retained.dataset, partition.day, partition.name, rows, None)


# ---------------------------------------------------------------- plan and purge


async def plan_day(
    conn: AsyncConn,
    root: Path | ArchiveLocation,
    day: date,
    partition: DayPartition | None,
    retained: RetainedTable = QUARANTINE_TABLE,
    watermark: datetime | None = None,
) -> DayPlan:
    """Reconcile one day past retention. `watermark`: the rollup's for `retained`."""
    _lo, hi = _bounds(day)
    sealed = partition is not None and partition.sealed_rows is not None
    # The archive is read in a thread while Postgres answers.
    reading = asyncio.ensure_future(_archived(root, retained, day, groups=not sealed))
    plan = DayPlan(
        retained.dataset,
        day,
        partition.name if partition else None,
        rows=0,
        breakdown={},
        archived_rows=0,
        reconciled=False,
    )
    if partition is not None and partition.sealed_rows is not None:
        # Sealed: Postgres is known unchanged since the count; the archive is compared with the
        # fingerprint it had then. If it differs (say a rebuilt day wrote other bytes), the day
        # is reconciled again the exact way, and still purged on its seal if it agrees.
        plan.sealed = True
        plan.rows = partition.sealed_rows
        plan.breakdown, fingerprint = await repository.fetch_seal(conn, retained.dataset, day)
        archived = await reading
        if archived.fingerprint != fingerprint:
            archived = await _archived(root, retained, day)
            rows, groups, problem = await _reconcile(conn, retained, day, archived)
            if problem is None and rows != plan.rows:
                problem = f"Postgres holds {rows} rows, the seal {plan.rows}"
            if problem is not None:
                plan.problem = f"the archive changed since the day was sealed: {problem}"
    else:
        archived = await reading
        plan.rows, groups, plan.problem = await _reconcile(conn, retained, day, archived)
        plan.breakdown = _breakdown(groups)
    plan.archived_rows = archived.rows
    if watermark is None or watermark < hi:
        plan.problem = "the rollup has not passed this day yet"
    if plan.problem is None:
        plan.reconciled = True
        if retained is QUARANTINE_TABLE:
            plan.objects = await repository.fetch_quarantine_object_keys(conn, *_bounds(day))
    return plan


async def plan_purge(
    conn: AsyncConn, root: Path | ArchiveLocation, today: date, partitions: Partitions | None = None
) -> list[DayPlan]:
    """Every day past retention that still has rows or a partition: quarantine days first, then
    preview-event days, each oldest first."""
    listed = partitions if partitions is not None else await _list_partitions(conn)
    plans: list[DayPlan] = []
    for table in RETAINED_TABLES:
        cutoff = cutoff_day(today, table.days)
        partitions_past = {p.day: p for p in listed[table.dataset] if p.day < cutoff}
        watermark = await repository.fetch_watermark_async(conn, table.dataset)
        in_default = await repository.list_default_days(conn, table.table, _bounds(cutoff)[0])
        for day in sorted(set(partitions_past) | set(in_default)):
            plans.append(
                await plan_day(conn, root, day, partitions_past.get(day), table, watermark)
            )
    return plans


async def purge(
    conn: AsyncConn,
    *,
    archive_root: Path | ArchiveLocation,
    store: QuarantineObjects | None,
    metrics: Metrics,
    today: date | None = None,
    dry_run: bool = False,
    progress: Progress = NO_PROGRESS,
    where: str = "",
) -> list[DayPlan]:
    """Seal the archived days not sealed yet, then purge every reconciled day past retention,
    then the expired rows of the `EXPIRING` tables (or, with `dry_run`, say what would go and
    change nothing). `where`: the installation's flags for the hints (`installation_flags`)."""
    # The database's date, never this replica's: a replica whose clock runs ahead must not
    # purge a day early (the rollup's watermark is on the same clock).
    today = today or (await repository.fetch_now_async(conn)).astimezone(UTC).date()
    async with _locked(conn) as held:
        if not held:
            return []
        partitions = await _list_partitions(conn)
        if not dry_run:
            await _seal_closed_days(conn, archive_root, partitions, progress, where)
        plans = await plan_purge(conn, archive_root, today, partitions)
        if plans and not dry_run:
            progress.start("purging days past retention", len(plans))
        for plan in plans:
            if not dry_run and plan.reconciled and plan.partition and not plan.sealed:
                plan.reconciled = False
                plan.problem = "the day is not sealed yet (see retention_day_not_sealed)"
            if not plan.reconciled:
                log.warning(
                    "retention_day_kept",
                    dataset=plan.dataset,
                    day=plan.day.isoformat(),
                    rows=plan.rows,
                    problem=plan.problem,
                    hint=_hint(plan.day, where),
                )
            elif not dry_run:
                await _purge_day(conn, plan, metrics)
            if not dry_run:
                progress.advance()
        for table in EXPIRING:
            expired = await _expire(conn, table, today, dry_run=dry_run)
            if expired is not None:
                plans.append(expired)
    if store is not None and not dry_run:
        for plan in plans:
            if plan.purged and plan.objects:
                await store.delete_many(plan.objects)
    return plans


async def _expire(
    conn: AsyncConn, table: Expiring, today: date, *, dry_run: bool
) -> DayPlan | None:
    """Delete (or count) `table`'s rows before its cutoff day; a plan when there were any."""
    cutoff = cutoff_day(today, table.days)
    rows = await repository.expire_rows(conn, table.table, _bounds(cutoff)[0], dry_run=dry_run)
    if not rows:
        return None
    plan = DayPlan(
        table.table,
        cutoff - timedelta(days=1),
        None,
        rows=rows,
        breakdown={},
        archived_rows=0,
        reconciled=True,
        purged=not dry_run,
    )
    if not dry_run:
        log.info("retention_rows_expired", table=table.table, before=cutoff.isoformat(), rows=rows)
    return plan


class _Kept(Exception):
    pass


async def _purge_day(conn: AsyncConn, plan: DayPlan, metrics: Metrics) -> None:
    retained = _BY_DATASET[plan.dataset]
    lo, hi = _bounds(plan.day)
    properties: dict[str, object] = {
        "day": plan.day.isoformat(),
        "rows": plan.rows,
        retained.breakdown: plan.breakdown,
        "archivedRows": plan.archived_rows,
        "partition": plan.partition,
    }
    if retained is QUARANTINE_TABLE:
        properties["objects"] = len(plan.objects)
    event = telemetry.build_event(
        retained.event,
        origin=EventOrigin.PREVIEW_MAINTENANCE,
        trace_id=telemetry.trace_id_from(None),
        thread_id=None,
        thread_chat_id=None,
        run_id=None,
        codesandbox_id=None,
        sandbox_provider=None,
        properties=properties,
    )
    try:
        async with conn.transaction():
            if plan.partition:
                locked = await repository.lock_partition(
                    conn, plan.partition, "ACCESS EXCLUSIVE", timeout_ms=DROP_LOCK_TIMEOUT_MS
                )
                if not locked:
                    raise _Kept("its partition is in use; the next run retries")
                sealed = await repository.take_seal(
                    conn, dataset=plan.dataset, day=plan.day, partition=plan.partition
                )
                if sealed != plan.rows:
                    raise _Kept("a write reached the day after it was sealed; it is re-checked")
            await telemetry.emit_event(conn, event)
            if plan.partition:
                # No row of the day can be in DEFAULT while the day has a partition.
                if not await repository.drop_partition(conn, plan.partition):
                    raise _Kept("its table is in use; the next run retries")
            else:
                deleted = await repository.delete_default_day(conn, retained.table, lo, hi)
                if deleted != plan.rows:
                    raise _Kept(f"{deleted} rows in DEFAULT, {plan.rows} reconciled")
    except _Kept as exc:
        plan.reconciled = False
        plan.problem = str(exc)
        log.warning(
            "retention_day_kept",
            dataset=plan.dataset,
            day=plan.day.isoformat(),
            rows=plan.rows,
            problem=plan.problem,
            hint="nothing to do: the next retention run decides again",
        )
        return
    plan.purged = True
    if retained is QUARANTINE_TABLE:
        for reason, n in plan.breakdown.items():
            metrics.inc(
                retained.metric, repo=None, user=None, provider=None, reason=reason, amount=n
            )
    elif plan.rows:
        metrics.inc(
            retained.metric, repo=None, user=None, provider=None, reason=None, amount=plan.rows
        )
    log.info(
        "retention_day_purged",
        dataset=plan.dataset,
        day=plan.day.isoformat(),
        rows=plan.rows,
        breakdown=plan.breakdown,
        partition=plan.partition,
        sealed=plan.sealed,
    )
