"""The rollup's read of one hour touches that hour's blocks, not its whole day (migration
2026-12-01-0135: BRIN on the time columns). Before it, each hourly COPY scanned the day's
partition, so an hour of a 5 M-row day cost like the day (issue 16; `tools/bench --only growth`
measures the time). Here the plan of the exact export query is checked: blocks read by the
hour's scan against the partition's size.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import psycopg

from terragon_ingest.archive.repository import Q
from tools.bench.growth import seed_day_around_hour

DAY = date(2026, 11, 20)
HOUR = 12


def _select(copy_query: str) -> str:
    """The SELECT inside `COPY ( … ) TO STDOUT …`."""
    match = re.search(r"COPY \((.*)\) TO STDOUT", copy_query, re.S)
    assert match, copy_query
    return match.group(1)


def _blocks_read(plan: dict) -> int:
    """Every block the plan touched, table and index (a node's buffers include its children's):
    a scan of a whole index on (thread_id, created_at) costs as the day grows, like a seq scan."""
    return int(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))


def _hour_plan(url: str, query: str, lo: datetime) -> tuple[int, int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        (raw,) = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _select(query),  # type: ignore[operator]
            {"lo": lo, "hi": lo + timedelta(hours=1)},
        ).fetchone()
        pages = conn.execute(
            "SELECT pg_relation_size(%s) / current_setting('block_size')::int",
            (f"daemon_event_quarantine_p{DAY:%Y%m%d}",),
        ).fetchone()
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    assert pages is not None
    return _blocks_read(plan), int(pages[0]), int(plan["Actual Rows"])


def test_one_hour_of_a_busy_day_reads_a_small_part_of_it(database_url: str) -> None:
    seed_day_around_hour(database_url, DAY, HOUR, day_rows=120_000, hour_rows=2_000)
    lo = datetime(DAY.year, DAY.month, DAY.day, HOUR, tzinfo=UTC)

    blocks, pages, rows = _hour_plan(database_url, Q["export_quarantine"], lo)

    assert rows == 2_000
    # The hour holds 1/60 of the day's rows (~110 of its blocks); BRIN ranges of 32 pages add
    # a few around them. Without the BRIN index the plan reads the whole (thread_id, created_at)
    # index (~540 blocks here, and growing with the day): more than `pages // 20`.
    assert blocks <= pages // 20, f"read {blocks} of {pages} blocks for one hour"
