"""The campaign's database failover (`--failover`, `--async-standby`) and clock skew (`--skew`).

Failover: the replicas' `DATABASE_URL` names a primary and its streaming standby in libpq's
multi-host form (`tools/standby.py`), as an operator names them. Mid-load the primary's whole
process group is SIGKILLed (its host died), the standby is promoted after `gap` seconds (the time a
failover manager takes to decide), and the first envelope applied on the new primary is timed from
the kill. Then the dead primary is rebuilt as the new primary's standby (a fresh base backup), so
the rest of the campaign runs on a pair again, synchronous when it started so.

Skew: one replica runs under libfaketime (Debian's `faketime`), its clock `skew` seconds ahead;
the others keep the machine's. The job-slot check then shows whether every periodic job still ran
once per slot, and the run check whether anything was finalized early.
"""

from __future__ import annotations

import glob
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from terragon_core import FinishReason
from tools.bench.stack import DATABASE, Stack
from tools.standby import PrimaryAndStandby

FIRST_APPLY_TIMEOUT = 60.0
"""Seconds after the promotion to wait for the first envelope applied on the new primary."""


@dataclass
class FailoverResult:
    synchronous: bool
    gap: float
    """Seconds between the kill and the promotion."""
    lag_bytes: int | None = None
    """WAL the standby had not replayed yet just before the kill (what an asynchronous standby
    can lose is at most this, plus what committed in the last instant)."""
    first_apply: float | None = None
    """Seconds from the kill to the first envelope applied on the new primary."""
    rebuilt: float | None = None
    """Seconds the dead primary took to come back as the new standby (None: not rebuilt)."""

    def line(self) -> str:
        mode = "synchronous" if self.synchronous else "asynchronous"
        first = f"{self.first_apply:.2f} s" if self.first_apply is not None else "never"
        rebuilt = f"rebuilt as standby in {self.rebuilt:.1f} s" if self.rebuilt else "not rebuilt"
        return (
            f"failover ({mode} standby): primary SIGKILLed, standby promoted after "
            f"{self.gap:.1f} s (standby {self.lag_bytes} WAL bytes behind at the kill); first envelope applied on the new primary {first} after the "
            f"kill; old primary {rebuilt}"
        )


def start_pair(stack: Stack, *, synchronous: bool) -> PrimaryAndStandby:
    """A primary and its standby in a directory of their own (the server's user must reach it;
    the campaign's work directory is private), the campaign's database migrated through the
    multi-host URL, and Valkey; `stack.db_url` names both servers."""
    from terragon_ingest.app import run_migrations

    pair = PrimaryAndStandby(
        Path(tempfile.mkdtemp(prefix="terragon-chaos-pg-")), synchronous=synchronous
    )
    try:
        pair.start()
        with psycopg.connect(pair.primary.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        stack.db_url = pair.url(DATABASE)
        run_migrations(stack.db_url)
        stack.start_valkey()
    except BaseException:
        pair.stop()
        raise
    return pair


def _messages(url: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM run_message").fetchone()
    return int(row[0]) if row else 0


def fail_over(pair: PrimaryAndStandby, *, gap: float, rebuild: bool) -> FailoverResult:
    """Kill the primary, promote the standby after `gap` s, time the first apply on it."""
    result = FailoverResult(synchronous=pair.synchronous, gap=gap)
    with psycopg.connect(pair.primary.url(), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"
        ).fetchone()
    result.lag_bytes = int(row[0]) if row and row[0] is not None else None
    pair.kill_primary()
    killed = time.monotonic()
    time.sleep(gap)  # the failover manager's decision time, during which daemons get 503s
    pair.promote()
    new_primary = pair.standby.url(DATABASE)
    at_promotion = _messages(new_primary)
    deadline = time.monotonic() + FIRST_APPLY_TIMEOUT
    while time.monotonic() < deadline:
        if _messages(new_primary) > at_promotion:
            result.first_apply = time.monotonic() - killed
            break
        time.sleep(0.05)  # polling the new primary's row count
    if rebuild:
        started = time.monotonic()
        pair.rebuild_old_primary()
        result.rebuilt = time.monotonic() - started
    return result


def faketime_env(skew: float) -> dict[str, str] | None:
    """What runs a process `skew` seconds ahead under libfaketime (None when it is not
    installed: `.ci/setup.d/faketime.sh`). Monotonic clocks are left alone: timeouts and the event
    loop measure durations, never the date."""
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not libraries:
        return None
    return {
        "LD_PRELOAD": libraries[0],
        "FAKETIME": f"{skew:+g}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@dataclass
class JobSlots:
    """The periodic jobs' slots (`job_slot`) in a window, against every boundary expected."""

    window: tuple[datetime, datetime] | None = None
    excluded: list[tuple[datetime, datetime]] = field(default_factory=list)
    """The PostgreSQL fault's span (no replica can claim or run a slot then), and that span
    `skew` s later (the skewed replica runs slots `skew` s before their boundary)."""
    expected: int = 0
    claimed: int = 0
    finished: int = 0
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    """Claimed, never finished, by a process that was not SIGKILLed (a killed one loses its
    slot's run by design: the next slot catches up)."""
    lost_to_kills: int = 0
    overran: int = 0
    """Boundaries passed while the job's previous slot still ran (the scheduler's loop waits for
    a run to end, then takes the next boundary: such a slot is skipped, never run twice)."""
    winners: Counter[str] = field(default_factory=Counter)
    """Slots won per replica (by its label): the skewed replica wins the slots it sees first."""

    @property
    def ok(self) -> bool:
        # A short campaign on a fast machine may leave no boundary outside the fault's span:
        # nothing checked is not a failure (the line says "expected 0"; the long campaigns
        # assert slots were checked).
        return not (self.failed or self.missing or self.unfinished)

    def line(self) -> str:
        if self.window is None:
            return "job slots: not checked"
        start, end = self.window
        gap = "".join(f" except {a:%H:%M:%S} to {b:%H:%M:%S}" for a, b in self.excluded)
        verdict = (
            "no slot outside the fault's span to check"
            if self.ok and not self.expected
            else "once per slot"
            if self.ok
            else "NOT once per slot"
        )
        problems = [
            *(f"missing {m}" for m in self.missing[:5]),
            *(f"failed {f}" for f in self.failed[:5]),
            *(f"unfinished {u}" for u in self.unfinished[:5]),
        ]
        return (
            f"job slots {start:%H:%M:%S} to {end:%H:%M:%S}{gap}: expected {self.expected}, claimed "
            f"{self.claimed}, finished {self.finished}, lost to replica kills "
            f"{self.lost_to_kills}, skipped while the previous run overran {self.overran}; won per replica {dict(self.winners)}: {verdict}"
            + (f" ({'; '.join(problems)})" if problems else "")
        )


def check_job_slots(
    db_url: str,
    jobs: list[str],
    interval: float,
    since: datetime,
    until: datetime,
    killed: set[str],
    labels: dict[str, str],
    excluded: list[tuple[datetime, datetime]] | None = None,
    kills: list[tuple[datetime, datetime]] | None = None,
) -> JobSlots:
    """Every boundary of `interval` in [since, until) outside `excluded` must have one claim per
    job that finished without failing, unless its claimant (`host:pid`) is in `killed`; a
    boundary nobody claimed inside one of `kills` (a replica down) counts as lost to the kill.
    `labels`: claimant → the replica's name, for the report."""
    slots = JobSlots(window=(since, until), excluded=excluded or [])
    first = int(since.timestamp() // interval + 1) * interval
    boundaries = [
        datetime.fromtimestamp(first + i * interval, UTC)
        for i in range(int((until.timestamp() - first) // interval) + 1)
        if first + i * interval < until.timestamp()
    ]
    boundaries = [b for b in boundaries if not any(a <= b <= z for a, z in slots.excluded)]
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job, slot_start, claimed_by, finished_at, failed FROM job_slot "
            "WHERE slot_start >= %s AND slot_start < %s",
            # from earlier on: the slot before the first boundary may have overrun into it
            (since - timedelta(seconds=10 * interval), until),
        ).fetchall()
    seen = {(job, slot): (str(by), done, failed) for job, slot, by, done, failed in rows}
    for job in jobs:
        for boundary in boundaries:
            slots.expected += 1
            name = f"{job}@{boundary:%H:%M:%S}"
            if (job, boundary) not in seen:
                earlier = [s for j, s in seen if j == job and s < boundary]
                previous = seen[(job, max(earlier))] if earlier else None
                if previous is not None and (previous[1] is None or previous[1] > boundary):
                    slots.overran += 1
                elif any(a <= boundary <= z for a, z in kills or []):
                    slots.lost_to_kills += 1
                else:
                    slots.missing.append(name)
                continue
            by, done, failed = seen[(job, boundary)]
            slots.claimed += 1
            slots.winners[labels.get(by, by)] += 1
            if failed:
                slots.failed.append(name)
            elif done is not None:
                slots.finished += 1
            elif by in killed:
                slots.lost_to_kills += 1
            else:
                slots.unfinished.append(name)
    return slots


def finalized_early(db_url: str) -> list[str]:
    """Runs the maintenance backstop failed (`missing_end_sha_timeout`): in the campaign every
    daemon ends its run itself, so any such run was finalized early."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id FROM thread_run WHERE finish_reason = %s",
            (FinishReason.MISSING_END_SHA_TIMEOUT.value,),
        ).fetchall()
    return [str(r[0]) for r in rows]
