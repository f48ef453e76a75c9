"""`uv run python -m tools.demo.history`: 30 days of believable demo history, written into a demo
data directory's archive.

`terragon up --demo` runs it (a child, from the checkout) while its servers start and waits for it
before the dashboard starts, so every chart and the offenders table have data in the first
minute; the live part stays real traffic (`tools/demo`).
The history goes through the rollup's own writers (`files.merge_hour`, `write_minutely`,
`write_daily`): the same Parquet layout and aggregates the dashboard reads for real data.

The story it tells (deterministic for a given `now`):

- a weekday rhythm: busy 07-19 UTC on weekdays, quiet nights and weekends;
- strict mode rolling out: `acme/api` turns `daemonRunIdStrict` on 12 days ago, `globex/site` 20
  days ago, so the `legacy_mode` tail of v1 daemons shrinks as the fleet upgrades;
- a quarantine storm: 3 days ago an old `globex/site` build floods `missing_run_id` for two and a
  half hours, well over the 5/min alert threshold;
- a `missing_end_sha` spike on `initech/app` 8 days ago (terminal envelopes from checkouts
  without git).

Demo data never lands in a non-demo data directory: `up --demo` claims the directory first
(`terragon_ingest.demo.claim_demo_dir`), and `backfill_history` refuses any archive outside a
marked directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import structlog

from terragon_core import (
    ARCHIVE_COLUMNS,
    LEGACY_THREAD_CHAT_ID,
    QUARANTINE_RETENTION_DAYS,
    ArchiveDataset,
    QuarantineReason,
    quarantine_object_key,
)
from terragon_ingest.archive import files
from terragon_ingest.demo import DEMO_MARKER, NotADemoDirectory, check_demo_archive
from terragon_ingest.log_config import configure_logging

log = structlog.get_logger()

HISTORY_DAYS: Final = QUARANTINE_RETENTION_DAYS
R = QuarantineReason


@dataclass(frozen=True, slots=True)
class _Repo:
    name: str
    user: str
    provider: str
    strict_since: int | None
    """Day offset (negative = days ago) from which the repo runs strict; None = never."""
    weight: float
    """Relative traffic."""


REPOS: Final = (
    _Repo("acme/web", "ada", "e2b", -99, 1.0),
    _Repo("acme/api", "grace", "docker", -12, 1.3),
    _Repo("globex/site", "linus", "daytona", -20, 0.9),
    _Repo("initech/app", "ken", "docker", None, 0.7),
    _Repo("umbrella/mobile", "barbara", "e2b", None, 0.8),
)
STORM: Final = ("globex/site", -3, 14, 150, 9.0)
"""(repo, day offset, start hour UTC, minutes, missing_run_id per minute): the alert storm."""
END_SHA_SPIKE: Final = ("initech/app", -8, 9, 120, 3.0)
"""(repo, day offset, start hour UTC, minutes, missing_end_sha per minute)."""


def backfill_history(data_dir: Path, archive_root: Path, now: datetime) -> int:
    """Write `HISTORY_DAYS` days of history up to the hour of `now` (once per demo directory).
    Returns the quarantine rows written (0 when the history is already there)."""
    check_demo_archive(data_dir, archive_root)
    marker = data_dir / DEMO_MARKER
    state = json.loads(marker.read_text() or "{}")
    if state.get("historyUntil"):
        return 0
    until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    table = history_rows(until)
    write_rows(archive_root, table)
    marker.write_text(json.dumps({"demo": True, "historyUntil": until.isoformat()}) + "\n")
    log.info(
        "demo_history_written",
        rows=table.num_rows,
        days=HISTORY_DAYS,
        until=until.isoformat(),
        archive=str(archive_root),
    )
    return table.num_rows


def write_rows(root: Path, table: pa.Table) -> None:
    """The rollup's writes, hour by hour: rows file, minutely aggregates, then each day's daily
    aggregates (`files.merge_hour` / `write_minutely` / `write_daily`)."""
    dataset = ArchiveDataset.QUARANTINE_ROWS
    con = files.connect()
    con.execute("SET threads = 1")  # hundreds of small files: one thread each is fastest
    try:
        hours = sorted(files.hours_with_rows(con, dataset, table))
        for hour in hours:
            files.merge_hour(con, root, dataset, hour, hour, table, hour + timedelta(hours=1))
            files.write_minutely(con, root, hour)
        for day in sorted({h.date() for h in hours}):
            files.write_daily(con, root, day)
    finally:
        con.close()


# --- the story ---------------------------------------------------------------------------------


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _activity(at: datetime) -> float:
    weekday = at.weekday() < 5
    working = 7 <= at.hour < 19
    # Nights are nearly silent: an hour without a row writes no file (as the rollup skips it).
    return (1.0 if weekday else 0.25) * (1.0 if working else 0.01)


def _v1_share(day_offset: int) -> float:
    """Share of the fleet still on v1 daemons (no runId): shrinks as upgrades roll out."""
    return 0.06 + 0.84 * min(1.0, -day_offset / HISTORY_DAYS)


def _rates(repo: _Repo, day_offset: int, at: datetime) -> dict[QuarantineReason, float]:
    """Quarantine rows per minute by reason for `repo` in the hour starting `at`."""
    act = _activity(at) * repo.weight
    strict = repo.strict_since is not None and day_offset >= repo.strict_since
    v1 = _v1_share(day_offset)
    return {
        # v1 daemons: applied with a legacy_mode row under strict=false, quarantined under strict
        R.LEGACY_MODE: 0.0 if strict else 0.7 * v1 * act,
        R.MISSING_RUN_ID: 0.1 * v1 * act if strict else 0.0,
        R.MISMATCH: 0.03 * act,  # zombies of superseded runs
        R.MISSING_END_SHA: 0.025 * act,
        R.PAYLOAD_VERSION_MISMATCH: 0.004 * act,
        R.INVALID_ENVELOPE: 0.003 * act,
    }


def _window_rate(event: tuple[str, int, int, int, float], repo: str, day: int, at: datetime) -> int:
    """Minutes of `event` within the hour at `at` for this repo/day (0 outside it)."""
    name, event_day, hour, minutes, _ = event
    if name != repo or day != event_day:
        return 0
    start = hour * 60
    lo, hi = at.hour * 60, at.hour * 60 + 60
    return max(0, min(hi, start + minutes) - max(lo, start))


def history_rows(until: datetime, seed: int = 15) -> pa.Table:
    """The quarantine rows of the `HISTORY_DAYS` days before `until` (an hour boundary)."""
    rng = random.Random(seed)  # made-up demo data, reproducible on purpose
    today = until.date()
    start = datetime.combine(today - timedelta(days=HISTORY_DAYS), datetime.min.time(), UTC)
    columns: dict[str, list[Any]] = {name: [] for name, _ in ARCHIVE_COLUMNS[R_ROWS]}
    hour = start
    while hour < until:
        day_offset = (hour.date() - today).days
        for index, repo in enumerate(REPOS):
            counts: dict[QuarantineReason, list[int]] = {}
            for reason, rate in _rates(repo, day_offset, hour).items():
                n = _poisson(rng, rate * 60)
                counts[reason] = [rng.randrange(60) for _ in range(n)]
            for event, reason in ((STORM, R.MISSING_RUN_ID), (END_SHA_SPIKE, R.MISSING_END_SHA)):
                minutes = _window_rate(event, repo.name, day_offset, hour)
                if minutes:
                    first = max(0, event[2] * 60 - hour.hour * 60)
                    for minute in range(first, first + minutes):
                        # a ramp up and down around the per-minute peak
                        shape = math.sin(math.pi * (minute - first + 0.5) / minutes) ** 0.5
                        k = _poisson(rng, event[4] * (0.6 + 0.8 * shape))
                        counts[reason] = counts.get(reason, []) + [minute] * k
            for reason, minutes_list in counts.items():
                for minute in minutes_list:
                    at = hour + timedelta(minutes=minute, seconds=rng.random() * 60)
                    _append_row(columns, rng, repo, index, reason, at, day_offset)
        hour += timedelta(hours=1)
    arrays = {
        name: pa.array(values, _arrow_type(kind))
        for (name, kind), values in zip(ARCHIVE_COLUMNS[R_ROWS], columns.values(), strict=True)
    }
    return pa.table(arrays)


R_ROWS: Final = ArchiveDataset.QUARANTINE_ROWS

_ARROW: Final = {
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "SMALLINT": pa.int16(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _arrow_type(kind: str) -> pa.DataType:
    return _ARROW[kind]


def _append_row(
    columns: dict[str, list[Any]],
    rng: random.Random,
    repo: _Repo,
    index: int,
    reason: QuarantineReason,
    at: datetime,
    day_offset: int,
) -> None:
    strict = reason is R.MISSING_RUN_ID or (
        repo.strict_since is not None and day_offset >= repo.strict_since
    )
    thread = f"demo-thread-{index}-{rng.randrange(40):02d}"
    run_id, active = _uuid(rng), _uuid(rng)
    v1 = reason in (R.LEGACY_MODE, R.MISSING_RUN_ID)
    event_id = None if v1 else _uuid(rng)
    seq = None if v1 else rng.randrange(1, 400)
    envelope = {
        "threadId": thread,
        "threadChatId": "main",
        "payloadVersion": 1 if v1 else 2,
        **({} if v1 else {"runId": active if reason is not R.MISMATCH else run_id}),
        **({} if v1 else {"eventId": event_id, "seq": seq}),
        "messages": [
            {
                "type": "result" if reason is R.MISSING_END_SHA else "assistant",
                "uuid": _uuid(rng),
                "message": {"content": [{"type": "text", "text": "demo history"}]},
            }
        ],
    }
    payload = json.dumps(envelope)
    size = len(payload) + (24_000 if rng.random() < 0.03 else rng.randrange(0, 3000))
    quarantine_id = _uuid(rng)
    offloaded = size > 16 * 1024
    row = {
        "id": quarantine_id,
        "created_at": at,
        "thread_id": thread,
        "thread_chat_id": "main" if not v1 else LEGACY_THREAD_CHAT_ID,
        "run_id": None if v1 else (run_id if reason is R.MISMATCH else active),
        "active_run_id": active,
        "reason": reason.value,
        "strict": strict,
        "payload_version": 1 if v1 else 2,
        "payload_hash": hashlib.sha256(payload.encode()).hexdigest(),
        "payload_size": size,
        "payload_prefix_2k": payload[:2048],
        "payload_object_key": (
            quarantine_object_key(thread, at.date(), quarantine_id) if offloaded else None
        ),
        "offload_skipped": False,
        "repo_full_name": repo.name,
        "user_id": repo.user,
        "sandbox_provider": repo.provider,
        "event_id": event_id,
        "seq": seq,
        "trace_id": f"{rng.getrandbits(128):032x}",
    }
    for name, values in columns.items():
        values.append(row[name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="uv run python -m tools.demo.history",
        description="Write the demo history into a demo data directory's archive (once).",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="a demo data directory")
    parser.add_argument("--archive", type=Path, required=True, help="its archive directory")
    parser.add_argument(
        "--log-format",
        choices=["console", "json"],
        default=None,
        help="default: console on a terminal, JSON otherwise",
    )
    args = parser.parse_args(argv)
    json_logs = (args.log_format == "json") if args.log_format else not sys.stderr.isatty()
    configure_logging("info", json=json_logs)
    try:
        backfill_history(args.data_dir.resolve(), args.archive.resolve(), datetime.now(UTC))
    except NotADemoDirectory as exc:
        log.error("demo_history_refused", error=str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
