"""The SQL spells some of core's sets as literals; these tests hold each spelling equal to core.

Run statuses stay literal lists in the SQL on purpose: PostgreSQL uses a partial index
(`thread_run_one_active`, `thread_run_active_missing_end_sha`) only when the query's predicate
implies the index's, which a bound array parameter never does.
"""

from __future__ import annotations

import re
from pathlib import Path

import terragon_ingest
from terragon_core import ACTIVE_RUN_STATUSES, RETAINED_TABLES, RunStatus

PACKAGE = Path(terragon_ingest.__file__).parent
SCHEMA = PACKAGE / "db" / "schema.sql"
ACTIVE = {s.value for s in ACTIVE_RUN_STATUSES}
TERMINAL = {s.value for s in RunStatus} - ACTIVE


def _sql_files() -> list[Path]:
    """Every SQL file in force: queries, function files and the schema snapshot (migrations are
    history; the snapshot is what they add up to)."""
    files = [p for p in PACKAGE.rglob("*.sql") if "migrations" not in p.parts]
    assert SCHEMA in files and any(p.name == "queries.sql" for p in files)
    return files


_STATUS_LIST = re.compile(
    r"\bstatus\s+IN\s*\(([^)]*)\)|\bstatus\s*=\s*ANY\s*\(\s*ARRAY\[([^\]]*)\]", re.IGNORECASE
)


def _status_lists(text: str) -> list[set[str]]:
    found = []
    for match in _STATUS_LIST.finditer(text):
        body = match.group(1) or match.group(2)
        found.append(set(re.findall(r"'([^']*)'", body)))
    return found


def test_every_run_status_list_is_cores_active_set_or_its_complement() -> None:
    checked = 0
    for path in _sql_files():
        for values in _status_lists(path.read_text()):
            if not values & {s.value for s in RunStatus}:
                continue  # another table's status
            checked += 1
            assert values in (ACTIVE, TERMINAL, ACTIVE | TERMINAL), (
                f"{path.relative_to(PACKAGE)}: status list {sorted(values)} is neither core's "
                f"ACTIVE_RUN_STATUSES {sorted(ACTIVE)}, nor the rest {sorted(TERMINAL)}, nor all"
            )
    assert checked >= 10  # the queries, the decision function and the snapshot's indexes


def test_a_wrong_status_list_is_caught() -> None:
    lists = _status_lists("WHERE r.status IN ('booting', 'running')")
    assert lists == [{"booting", "running"}] and lists[0] not in (ACTIVE, TERMINAL)


def test_the_partitioned_tables_are_cores_retained_tables() -> None:
    schema = SCHEMA.read_text()
    partitioned = set(
        re.findall(r"^CREATE TABLE (\w+) \((?:[^;]*?)\) PARTITION BY", schema, re.MULTILINE)
    )
    assert partitioned == {t.table for t in RETAINED_TABLES}


def test_the_watermark_and_seal_datasets_are_cores_retained_tables() -> None:
    schema = SCHEMA.read_text()
    for table in ("archive_watermark", "archive_day_seal"):
        check = re.search(rf"ALTER TABLE {table} ADD CONSTRAINT \w+ CHECK \((.*)\);", schema)
        assert check is not None
        assert set(re.findall(r"'([^']*)'", check.group(1))) == {t.dataset for t in RETAINED_TABLES}
