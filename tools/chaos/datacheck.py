"""Every kind of data under the campaign's faults (issue 27): an old day that retention archives,
seals and purges while the faults run, and the final checks of the quarantine rows, the preview
events, the daily aggregates, the misbehaving daemons' ledger and the offloaded payloads.

- `seed_old_day` (before any replica starts, so the rollup's first watermark is that day's first
  hour): quarantine rows (some offloaded, their objects in the store) and preview events of a day
  past retention, in day partitions of their own.
- `RetentionDriver` (a thread, from the start of the faults): as an operator would, `terragon
  archive rollup` then `terragon retention purge`, again (PostgreSQL may be restarting) until both
  tables' partitions of the old day are gone; the campaign's fault window lasts until then.
- `check` (replicas stopped, after the final rollup): the figures of `DataReport`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import obstore
import psycopg
from psycopg import sql

from terragon_core import (
    EVENT_PURGE_EVENT,
    PREVIEW_EVENT_TABLE,
    QUARANTINE_PURGE_EVENT,
    QUARANTINE_RETENTION_DAYS,
    QUARANTINE_TABLE,
    EnvelopeStatus,
    PreviewEventName,
    QuarantineReason,
    QuarantineRecord,
    quarantine_object_key,
)
from terragon_ingest.archive.repository import partition_name
from tools.bench.stack import environ
from tools.chaos.mischief import Mischief, ZombieDaemon

OLD_DAY_AGE = QUARANTINE_RETENTION_DAYS + 2
"""Days before today of the seeded day: past retention for both tables."""
OLD_QUARANTINE_ROWS = 12
OLD_PREVIEW_EVENTS = 8
OLD_HOUR = 22
"""The seeded rows' hour of that day: one hour file per dataset to archive (a light rollup)."""
OLD_OFFLOADED_EVERY = 4
"""Every 4th seeded quarantine row points at a payload object (written to the store)."""

Terragon = Callable[..., str]
"""`campaign._terragon(env, *args)`: one `terragon` command, its stdout (raises on failure)."""


@contextmanager
def _store(env: dict[str, str]) -> Iterator[Any]:
    """The object store the replicas offload to (`OBJECT_STORE_URL` of `env`), as they open it."""
    from terragon_ingest.objects import QuarantineObjects
    from terragon_ingest.settings import Settings

    with environ(**{k: v for k, v in env.items() if k.startswith("OBJECT_STORE_")}):
        yield QuarantineObjects.from_settings(Settings()).store


def _exists(store: Any, key: str) -> bool:
    try:
        obstore.head(store, key)
    except FileNotFoundError:
        return False
    return True


@dataclass
class OldDay:
    day: date
    quarantine_rows: int = 0
    preview_events: int = 0
    object_keys: list[str] = field(default_factory=list)
    purged_after: float | None = None
    """Seconds into the fault window when the day was seen gone from both tables."""
    faults_ended_after: float | None = None
    """Seconds into the fault window when it closed (the driver was stopped)."""
    purge_runs: int = 0
    """`terragon retention purge` runs (with their rollup) it took, failed ones included."""
    failures: Counter[str] = field(default_factory=Counter)
    """Failed commands by name."""
    timings: list[str] = field(default_factory=list)
    """Each command's wall time, in order (`rollup 3.1s`)."""
    last_failure: str = ""

    def purged_rows(self) -> dict[str, int]:
        """Rows per table that left PostgreSQL with the day (none while it is not purged)."""
        if self.purged_after is None:
            return {}
        return {
            QUARANTINE_TABLE.table: self.quarantine_rows,
            PREVIEW_EVENT_TABLE.table: self.preview_events,
        }


def seed_old_day(db_url: str, env: dict[str, str]) -> OldDay:
    """Rows of a day `OLD_DAY_AGE` days ago in both retained tables' partitions of that day."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=OLD_DAY_AGE)
    old = OldDay(start.date())
    records = []
    for i in range(OLD_QUARANTINE_ROWS):
        at = start + timedelta(hours=OLD_HOUR, minutes=i * 4)
        row_id = str(uuid.uuid4())
        thread = f"chaos-old-{i % 3}"
        key = None
        if i % OLD_OFFLOADED_EVERY == 0:
            key = quarantine_object_key(thread, old.day, row_id)
            old.object_keys.append(key)
        payload = json.dumps({"threadId": thread, "messages": [], "note": f"old {i}"})
        records.append(
            QuarantineRecord(
                id=row_id,
                created_at=at,
                thread_id=thread,
                thread_chat_id="legacy-thread-chat-id",
                run_id=None,
                active_run_id=None,
                reason=(QuarantineReason.MISMATCH, QuarantineReason.LEGACY_MODE)[i % 2],
                strict=False,
                payload_version=2,
                payload_hash=hashlib.sha256(payload.encode()).hexdigest(),
                payload_size=len(payload),
                payload_prefix_2k=payload,
                payload_object_key=key,
                repo_full_name=f"chaos/old-{i % 2}",
                user_id="chaos-user",
                sandbox_provider="manual",
                event_id=f"chaos-old-{row_id}",
                seq=1,
                trace_id=uuid.uuid4().hex,
            )
        )
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in (QUARANTINE_TABLE.table, PREVIEW_EVENT_TABLE.table):
            conn.execute(
                "SELECT terragon_ensure_day_partitions(%s::regclass, %s, 1)", (table, old.day)
            )
        conn.execute(
            "SELECT terragon_insert_quarantine(r) FROM jsonb_array_elements(%s::jsonb) AS r",
            (msgspec.json.encode(records).decode(),),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO preview_event (ts_server, schema_version, event_name, origin, "
                "trace_id, thread_id, properties) VALUES (%s, 1, %s, 'preview_proxy', %s, "
                "'chaos-old-0', '{\"reason\": \"expired\"}')",
                [
                    (
                        start + timedelta(hours=OLD_HOUR, minutes=i * 7),
                        PreviewEventName.ACCESS_DENIED.value,
                        str(i),
                    )
                    for i in range(OLD_PREVIEW_EVENTS)
                ],
            )
    with _store(env) as store:
        for key in old.object_keys:
            obstore.put(store, key, b'{"old": true}')
    old.quarantine_rows, old.preview_events = OLD_QUARANTINE_ROWS, OLD_PREVIEW_EVENTS
    return old


def _day_gone(db_url: str, day: date) -> bool:
    """Neither retained table has a partition or a row of `day` any more."""
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
        for retained, column in (
            (QUARANTINE_TABLE, "created_at"),
            (PREVIEW_EVENT_TABLE, "ts_server"),
        ):
            name = partition_name(day, retained.table)
            row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if row is not None and row[0] is not None:
                return False
            query = sql.SQL(
                "SELECT count(*) FROM {} WHERE {} >= %s AND {} < %s + interval '1 day'"
            ).format(sql.Identifier(retained.table), sql.Identifier(column), sql.Identifier(column))
            count = conn.execute(query, (lo, lo)).fetchone()
            if count is None or count[0]:
                return False
    return True


class RetentionDriver:
    """Rollup + retention purge by the CLI, repeated until the old day is gone (`done`)."""

    def __init__(self, old: OldDay, db_url: str, env: dict[str, str], terragon: Terragon) -> None:
        self.old, self.db_url, self.env, self.terragon = old, db_url, env, terragon
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._started = 0.0
        self._delay = 0.0

    def finished(self, now: float, window: float) -> bool:
        """Whether the fault window may close at `now` (seconds into it): the day is gone, or
        retention had `window` + 4 minutes more than the window to get there (then the report
        says NOT purged). On a loaded machine one rollup + purge pair takes tens of seconds."""
        return self.done.is_set() or now >= 2 * window + 240

    def start(self, started: float, delay: float = 0.0) -> None:
        """Begin `delay` seconds after `started` (the fault window's start, monotonic)."""
        self._started = started
        self._delay = delay
        self._thread.start()

    def stop(self) -> None:
        if self.old.faults_ended_after is None and self._started:
            self.old.faults_ended_after = time.monotonic() - self._started
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(700)

    def _run(self) -> None:
        self._stop.wait(self._delay)
        while not self._stop.is_set():
            self.old.purge_runs += 1
            for args in (("archive", "rollup"), ("retention", "purge")):
                began = time.monotonic()
                try:
                    self.terragon(self.env, *args)
                except (RuntimeError, OSError) as exc:  # PostgreSQL restarting, a lock held
                    self.old.timings.append(f"{args[1]} failed {time.monotonic() - began:.1f}s")
                    self.old.failures[" ".join(args)] += 1
                    self.old.last_failure = (str(exc).strip().splitlines() or [""])[-1][:200]
                    break
                self.old.timings.append(f"{args[1]} {time.monotonic() - began:.1f}s")
            try:
                gone = _day_gone(self.db_url, self.old.day)
            except psycopg.Error:
                gone = False
            if gone:
                self.old.purged_after = time.monotonic() - self._started
                self.done.set()
                return
            self._stop.wait(1.0)  # pacing between operator runs


@dataclass
class DataReport:
    old: OldDay | None = None
    purge_events: dict[str, int] = field(default_factory=dict)
    """Rows the purge events of the old day name, per purge event."""
    old_objects_left: int = -1
    sent: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    acknowledged: int = 0
    """Quarantine rows the answers named (`quarantineId`)."""
    acknowledged_once: int = 0
    """Of those, the rows present exactly once, with the acknowledged reason."""
    extra_rows: int = 0
    """Rows of the misbehaving daemons' envelopes that no answer named (a retry after a cut)."""
    stale_rows: int = -1
    """Quarantine rows of `stale_seq` envelopes (must be none)."""
    offloaded: int = 0
    offloaded_present: int = 0
    offload_skipped: int = 0
    """Rows over the inline limit whose offload was skipped (Valkey down, repo over its rate)."""
    missing_objects: list[str] = field(default_factory=list)
    aggregates: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Per archived day: (quarantine_rows, sum of daily aggregates, sum of minutely aggregates)."""
    zombie: ZombieFigures | None = None
    quarantine_archive: tuple[int, int, int] | None = None
    preview_archive: tuple[int, int, int] | None = None
    orphans: dict[str, int] = field(default_factory=dict)
    """Message rows and dedupe records whose run does not exist, per table (must be none: their
    foreign keys were dropped for the apply's cost, migration 2026-12-07-2030)."""

    @property
    def purged(self) -> bool:
        """The old day was purged while the faults ran."""
        old = self.old
        return (
            old is not None
            and old.purged_after is not None
            and old.faults_ended_after is not None
            and old.purged_after <= old.faults_ended_after
        )

    @property
    def purge_reconciled(self) -> bool:
        return (
            self.old is not None
            and self.purge_events.get(QUARANTINE_PURGE_EVENT) == self.old.quarantine_rows
            and self.purge_events.get(EVENT_PURGE_EVENT) == self.old.preview_events
            and self.old_objects_left == 0
        )

    @property
    def aggregates_ok(self) -> bool:
        return bool(self.aggregates) and all(r == d == m for r, d, m in self.aggregates.values())

    @property
    def ledger_ok(self) -> bool:
        return (
            sum(self.sent.values()) > 0
            and not self.unexpected
            and self.acknowledged > 0
            and self.acknowledged_once == self.acknowledged
            and self.stale_rows == 0
        )

    @property
    def objects_ok(self) -> bool:
        return self.offloaded > 0 and self.offloaded_present == self.offloaded

    @property
    def rows_ok(self) -> bool:
        """Quarantine rows and preview events: some, each archived exactly once."""
        counts = [self.quarantine_archive, self.preview_archive]
        return all(c is not None and c[0] > 0 and c[0] == c[1] == c[2] for c in counts)

    @property
    def orphans_ok(self) -> bool:
        return bool(self.orphans) and not any(self.orphans.values())

    @property
    def ok(self) -> bool:
        return (
            self.rows_ok
            and self.orphans_ok
            and self.purged
            and self.purge_reconciled
            and self.aggregates_ok
            and self.ledger_ok
            and self.objects_ok
            and (self.zombie is None or self.zombie.ok)
        )

    def lines(self) -> list[str]:
        old = self.old
        retention = "retention: no old day seeded"
        if old is not None:
            ended = old.faults_ended_after or 0.0
            when = (
                f"purged {old.purged_after:.1f} s into the faults (they ended at {ended:.1f} s)"
                if old.purged_after is not None
                else "NOT purged"
            )
            retention = (
                f"retention: day {old.day} ({old.quarantine_rows} quarantine rows, "
                f"{old.preview_events} preview events, {len(old.object_keys)} payload objects) "
                f"{when} after {old.purge_runs} rollup+purge run(s) "
                f"({', '.join(old.timings)}); purge events {self.purge_events}, "
                f"its objects left {self.old_objects_left}"
                + (f"; last failure: {old.last_failure}" if old.last_failure else "")
                + ("  reconciled" if self.purge_reconciled else "  NOT reconciled")
            )

        def counts(name: str, c: tuple[int, int, int] | None) -> str:
            return f"{name} {'/'.join(map(str, c)) if c else 'not checked'}"

        days = sorted(self.aggregates.items())
        purged = old.purged_rows() if old is not None else {}
        return [
            "every kind of row (postgres before the watermark + purged / archived / distinct): "
            f"{counts('quarantine_rows', self.quarantine_archive)}, "
            f"{counts('preview_events', self.preview_archive)}, the purged day's "
            f"{purged.get(QUARANTINE_TABLE.table, 0)} + {purged.get(PREVIEW_EVENT_TABLE.table, 0)} "
            "counted (in the archive only)"
            + ("  non-zero, reconciled" if self.rows_ok else "  NOT reconciled (or none)"),
            retention,
            "daily aggregates (archived rows / daily sum / minutely sum per day): "
            + ", ".join(f"{d} {r}/{a}/{m}" for d, (r, a, m) in days)
            + ("  equal" if self.aggregates_ok else "  NOT equal"),
            f"misbehaving daemons: sent {dict(self.sent)}, retried {dict(self.retries)}, "
            f"unexpected answers {len(self.unexpected)}"
            + (f" ({'; '.join(self.unexpected[:5])})" if self.unexpected else ""),
            *([self.zombie.line()] if self.zombie else []),
            "applied rows without their run (run_message / daemon_event): "
            + " / ".join(str(self.orphans.get(t, "-")) for t in ORPHAN_TABLES)
            + ("  none" if self.orphans_ok else "  NOT none"),
            f"quarantine ledger: {self.acknowledged} acknowledged rows, "
            f"{self.acknowledged_once} present exactly once; {self.extra_rows} unacknowledged "
            f"row(s) of retried envelopes; stale_seq rows {self.stale_rows}",
            f"offloaded payloads: {self.offloaded} row(s) point at the object store, "
            f"{self.offloaded_present} present; {self.offload_skipped} offload(s) skipped "
            "(Valkey down or the repo over its rate: prefix and hash only)"
            + (
                f" (missing: {', '.join(self.missing_objects[:3])})" if self.missing_objects else ""
            ),
        ]


@dataclass
class ZombieFigures:
    superseded_after: float | None
    exit_code: int | None
    applied: int
    """Its messages stored before its run was superseded."""
    batches: int
    """Batches it logged as answered `quarantined`."""
    reasons: Counter[str]
    with_rows: int
    """Of those, the batches with a `mismatch` row of their event id."""
    rows: int
    """Quarantine rows naming its run (a batch retried after a cut has two)."""

    @property
    def ok(self) -> bool:
        return (
            self.superseded_after is not None
            and self.batches > 0
            and self.with_rows == self.batches
            and set(self.reasons) == {QuarantineReason.MISMATCH.value}
        )

    def line(self) -> str:
        when = (
            f"superseded {self.superseded_after:.1f} s into the faults"
            if self.superseded_after is not None
            else "NEVER superseded"
        )
        return (
            f"real zombie daemon: {when}, {self.applied} message(s) applied before, "
            f"{self.batches} batch(es) answered quarantined {dict(self.reasons)}, "
            f"{self.with_rows} with their row ({self.rows} row(s) name its run), "
            f"exit {self.exit_code}" + ("" if self.ok else "  NOT ok")
        )


ORPHAN_TABLES = ("run_message", "daemon_event")


def _zombie(conn: psycopg.Connection[Any], zombie: ZombieDaemon) -> ZombieFigures:
    logged = zombie.quarantined()
    rows = conn.execute(
        "SELECT event_id, reason FROM daemon_event_quarantine WHERE run_id = %s",
        (zombie.run.run_id,),
    ).fetchall()
    mismatched = {str(r[0]) for r in rows if r[1] == QuarantineReason.MISMATCH}
    applied = conn.execute(
        "SELECT count(*) FROM run_message WHERE run_id = %s", (zombie.run.run_id,)
    ).fetchone()
    return ZombieFigures(
        superseded_after=zombie.superseded_after,
        exit_code=zombie.exit_code,
        applied=int(applied[0]) if applied else 0,
        batches=len(logged),
        reasons=Counter(logged.values()),
        with_rows=sum(1 for e in logged if e in mismatched),
        rows=len(rows),
    )


def _archive_sql(terragon: Terragon, env: dict[str, str], query: str) -> list[dict[str, Any]]:
    return list(json.loads(terragon(env, "archive", "sql", "--format", "json", query)))


def check(
    db_url: str,
    env: dict[str, str],
    terragon: Terragon,
    mischief: Mischief,
    old: OldDay | None,
    archive: dict[str, tuple[int, int, int]],
) -> DataReport:
    """The final checks (replicas stopped, the final rollup done). `archive`: the campaign's
    reconcile (its Postgres side already counts the purged day's rows)."""
    report = DataReport(old=old)
    ledger = mischief.ledger
    report.quarantine_archive = archive.get("quarantine_rows")
    report.preview_archive = archive.get("preview_events")
    report.sent = ledger.by_kind()
    report.retries = ledger.retries
    report.unexpected = [
        f"{a.kind} {a.status}{' ' + a.reason if a.reason else ''}" for a in ledger.unexpected()
    ]
    acked = ledger.quarantined()
    report.acknowledged = len(acked)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id::text, reason, count(*) FROM daemon_event_quarantine WHERE id = ANY(%s) "
            "GROUP BY id, reason",
            ([uuid.UUID(i) for i in acked],),
        ).fetchall()
        found = Counter(str(r[0]) for r in rows)
        report.acknowledged_once = sum(
            1
            for r in rows
            if found[str(r[0])] == 1
            and r[2] == 1
            and r[1] == (acked[str(r[0])].reason or QuarantineReason.LEGACY_MODE)
        )
        event_ids = [a.event_id for a in ledger.acks if a.status != EnvelopeStatus.STALE_SEQ]
        stale = [a.event_id for a in ledger.acks if a.kind == "stale_seq"]
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE event_id = ANY(%s)), "
            "count(*) FILTER (WHERE event_id = ANY(%s)) FROM daemon_event_quarantine",
            (event_ids, stale),
        ).fetchone()
        assert row is not None
        # v1 envelopes carry no eventId: their rows are matched by their ids only.
        named = sum(1 for a in acked.values() if a.kind in ("zombie", "oversized"))
        report.extra_rows = int(row[0]) - named
        report.stale_rows = int(row[1])
        keys = [
            str(r[0])
            for r in conn.execute(
                "SELECT payload_object_key FROM daemon_event_quarantine "
                "WHERE payload_object_key IS NOT NULL"
            ).fetchall()
        ]
        if mischief.zombie is not None:
            report.zombie = _zombie(conn, mischief.zombie)
        for table in ORPHAN_TABLES:
            found_orphans = conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {} x WHERE NOT EXISTS "
                    "(SELECT 1 FROM thread_run r WHERE r.run_id = x.run_id)"
                ).format(sql.Identifier(table))
            ).fetchone()
            report.orphans[table] = int(found_orphans[0]) if found_orphans else -1
        skipped = conn.execute(
            "SELECT count(*) FROM daemon_event_quarantine WHERE offload_skipped"
        ).fetchone()
        report.offload_skipped = int(skipped[0]) if skipped else 0
        if old is not None:
            for name, n in conn.execute(
                "SELECT event_name, (properties ->> 'rows')::int FROM preview_event "
                "WHERE event_name = ANY(%s) AND properties ->> 'day' = %s",
                ([QUARANTINE_PURGE_EVENT, EVENT_PURGE_EVENT], old.day.isoformat()),
            ).fetchall():
                report.purge_events[str(name)] = report.purge_events.get(str(name), 0) + int(n)
    with _store(env) as store:
        report.offloaded = len(keys)
        present = [k for k in keys if _exists(store, k)]
        report.offloaded_present = len(present)
        report.missing_objects = sorted(set(keys) - set(present))
        if old is not None:
            report.old_objects_left = sum(1 for k in old.object_keys if _exists(store, k))
    per_day = _archive_sql(
        terragon,
        env,
        "SELECT CAST(r.day AS VARCHAR) AS day, r.n, coalesce(d.q, 0) AS daily, "
        "coalesce(m.q, 0) AS minutely "
        "FROM (SELECT day, count(*) AS n FROM quarantine_rows GROUP BY day) r "
        "LEFT JOIN (SELECT day, sum(quarantined) AS q FROM quarantine_daily GROUP BY day) d "
        "USING (day) "
        "LEFT JOIN (SELECT day, sum(quarantined) AS q FROM quarantine_minutely GROUP BY day) m "
        "USING (day) ORDER BY r.day",
    )
    report.aggregates = {
        str(r["day"]): (int(r["n"]), int(r["daily"]), int(r["minutely"])) for r in per_day
    }
    # A day of aggregates without rows would not show above: count those days too.
    orphans = _archive_sql(
        terragon,
        env,
        "SELECT CAST(day AS VARCHAR) AS day, sum(quarantined) AS q FROM quarantine_daily "
        "WHERE day NOT IN (SELECT DISTINCT day FROM quarantine_rows) GROUP BY day",
    )
    for r in orphans:
        report.aggregates[str(r["day"])] = (0, int(r["q"]), -1)
    return report
