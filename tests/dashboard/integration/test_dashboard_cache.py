"""What the dashboard keeps between script runs (`terragon_dashboard.cache`): the archive's views
are reopened only when its files changed, a query's result is reused until then, a day the rollup
adds is seen at the next listing, and from a bucket the aggregates are read from a local mirror
that follows the bucket's objects. The answers are the archive's, cached or not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import obstore
import pandas as pd
import pytest

from terragon_core import ArchiveDataset, QuarantineReason
from terragon_dashboard import archive, cache
from terragon_dashboard.source import MIRRORED
from terragon_ingest.archive import repository
from terragon_ingest.archive.rollup import rollup
from terragon_ingest.objects import open_store
from terragon_ingest.settings import ObjectStoreSettings
from tests.dashboard.seed import Row, connect, ensure_day_partitions, insert_quarantine, utc_day
from tools.bench.synthetic_archive import generate_archive
from tools.s3_server import S3Target

LAST_DAY = date(2026, 11, 25)


def _same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal as sets of rows (ties in a query's ORDER BY may come in either order)."""
    assert len(found) and list(found.columns) == list(expected.columns)
    order = list(found.columns)
    pd.testing.assert_frame_equal(
        found.sort_values(order, ignore_index=True), expected.sort_values(order, ignore_index=True)
    )


@pytest.fixture(name="reader")
def fx_reader(tmp_path: Path) -> Iterator[cache.ArchiveReader]:
    reader = cache.ArchiveReader(str(tmp_path / "archive"), manifest_seconds=0)
    yield reader
    reader.close()


def _seed_and_roll_up(url: str, root: Path, offset: int) -> None:
    """Rows on day `offset` (UTC days from today), rolled up until the next day began."""
    with connect(url) as conn:
        ensure_day_partitions(conn, utc_day(offset).date(), 1)
        insert_quarantine(
            conn,
            [
                Row(at=utc_day(offset, hour=h), reason=QuarantineReason.MISSING_RUN_ID)
                for h in range(3)
            ],
        )
    with repository.connect(url) as conn:
        rollup(conn, root, settle_seconds=60, until=utc_day(offset + 1, hour=0))


def test_a_rerun_reuses_the_views_and_results_and_a_rolled_up_day_replaces_them(
    database_url: str, tmp_path: Path, reader: cache.ArchiveReader
) -> None:
    root = tmp_path / "archive"
    _seed_and_roll_up(database_url, root, -3)
    first = reader.snapshot()
    assert cache.query("choices", first).last_day == utc_day(-3).date()
    again = reader.snapshot()
    assert again.fingerprint == first.fingerprint
    assert reader.opened == 1  # nothing changed: the same views

    _seed_and_roll_up(database_url, root, -2)
    new = reader.snapshot()
    assert new.fingerprint != first.fingerprint
    assert reader.opened == 2
    assert cache.query("choices", new).last_day == utc_day(-2).date()
    # a result is stored under the listing it came from: the old one never answers for the new
    assert cache.query("choices", first).last_day == utc_day(-3).date()


def test_a_listing_is_trusted_for_its_seconds_then_taken_again(
    database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    _seed_and_roll_up(database_url, root, -3)
    reader = cache.ArchiveReader(str(root), manifest_seconds=3600)
    try:
        first = reader.snapshot()
        _seed_and_roll_up(database_url, root, -2)
        assert reader.snapshot().fingerprint == first.fingerprint  # within its seconds
        reader.manifest_seconds = 0
        assert reader.snapshot().fingerprint != first.fingerprint
    finally:
        reader.close()


def test_recent_rows_day_by_day_are_the_rows_of_one_query_over_the_range(
    tmp_path: Path, reader: cache.ArchiveReader
) -> None:
    root = Path(reader.archive)
    generate_archive(root, last_day=LAST_DAY, days=3, repos=3, rows_per_minute=1, recent_rows=5)
    # rows on an earlier day too: a limit larger than the last day's rows spans two days
    generate_archive(
        root, last_day=LAST_DAY - timedelta(days=1), days=1, repos=3, rows_per_minute=1
    )
    snap = reader.snapshot()
    filters = archive.Filters(start=LAST_DAY - timedelta(days=2), end=LAST_DAY)
    with reader.connection() as con:
        whole = archive.recent_rows(con, filters, limit=12)
        assert set(whole["created_at"].dt.date) == {LAST_DAY, LAST_DAY - timedelta(days=1)}
        for limit in (3, 12, 500):
            expected = archive.recent_rows(con, filters, limit=limit)
            found = cache.recent_rows(snap, filters, limit, offender=None)
            pd.testing.assert_frame_equal(found, expected)
        picked = ("repo", "acme/repo-0001")
        pd.testing.assert_frame_equal(
            cache.recent_rows(snap, filters, 200, offender=picked),
            archive.recent_rows(con, filters, 200, offender=picked),
        )


def test_warm_up_fills_the_caches_the_first_run_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "warm"
    generate_archive(root, last_day=LAST_DAY, days=3, repos=3, rows_per_minute=1)
    cache.warm_up(root)
    snap = cache.snapshot(root)
    assert cache.reader(str(root)).opened == 1

    def no_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was queried again")

    for name in ("choices", "trend", "top_offenders", "recent_rows"):
        monkeypatch.setattr(archive, name, no_read)
    choice = cache.query("choices", snap)
    first, last = archive.default_range(choice, datetime.now(UTC).date())  # as the page asks
    filters = archive.Filters(start=first, end=last)
    assert len(cache.query("trend", snap, filters, "repo")) > 0
    ranked = cache.query("top_offenders", snap, filters, "repo", rank_by=archive.RANKINGS[0])
    assert len(ranked) == 3  # as the page asks it: ranked by its "Rank by" default
    assert len(cache.recent_rows(snap, filters, offender=None)) > 0


def test_from_a_bucket_aggregates_come_from_a_mirror_that_follows_the_bucket(
    tmp_path: Path, s3: S3Target
) -> None:
    local = tmp_path / "local"
    generate_archive(local, last_day=LAST_DAY, days=3, repos=3, rows_per_minute=1)
    url = f"{s3.url}/archive"
    store = open_store(url, ObjectStoreSettings())
    for path in sorted(local.rglob("*.parquet")):
        obstore.put(store, str(path.relative_to(local)), path)

    remote = cache.ArchiveReader(url, manifest_seconds=0)
    here = cache.ArchiveReader(str(local), manifest_seconds=0)
    try:
        remote.snapshot()
        filters = archive.Filters(start=LAST_DAY - timedelta(days=2), end=LAST_DAY)
        with remote.connection() as a, here.connection() as b:
            assert archive.choices(a) == archive.choices(b)
            for name in ("trend", "top_offenders"):
                _same(
                    getattr(archive, name)(a, filters, "repo"),
                    getattr(archive, name)(b, filters, "repo"),
                )
            _same(archive.recent_rows(a, filters), archive.recent_rows(b, filters))
        mirror = remote.mirror
        assert mirror is not None
        kept = {p.relative_to(mirror).parts[0] for p in mirror.rglob("*.parquet")}
        assert kept == {d.value for d in MIRRORED}  # rows stay in the bucket

        # a day leaves the bucket: its copies leave the mirror, the answers follow
        for dataset in MIRRORED:
            for key in obstore.list(store, prefix=f"{dataset.value}/day={LAST_DAY}/").collect():
                obstore.delete(store, key["path"])
        remote.snapshot()
        assert not list(mirror.glob(f"*/day={LAST_DAY}/*.parquet"))
        with remote.connection() as a:
            assert archive.choices(a).last_day == LAST_DAY - timedelta(days=1)
        daily = ArchiveDataset.QUARANTINE_DAILY.value
        assert list(mirror.glob(f"{daily}/day={LAST_DAY - timedelta(days=1)}/*.parquet"))
    finally:
        remote.close()
        here.close()
    assert not mirror.exists()
