"""The demo's 30 days of history (issue 15; `tools/demo/history.py`): written through the rollup's
writers into a demo data directory only, and telling the story the dashboard is meant to show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from terragon_core import QUARANTINE_ALERT_PER_MINUTE
from terragon_ingest import demo
from terragon_ingest.archive import files
from terragon_ingest.cli import main
from terragon_ingest.settings import get_settings
from tools.demo import history

NOW = datetime(2026, 11, 30, 15, 42, tzinfo=UTC)  # a Monday afternoon


@pytest.fixture(name="demo_dir", scope="module")
def fx_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    demo.claim_demo_dir(data_dir)
    assert history.backfill_history(data_dir, data_dir / "archive", NOW) > 5_000
    return data_dir


def _one(con, sql: str) -> object:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_history_is_the_rollups_layout_and_adds_up(demo_dir: Path) -> None:
    con = files.open_archive(demo_dir / "archive")
    rows = _one(con, "SELECT count(*) FROM quarantine_rows")
    assert rows == _one(con, "SELECT sum(quarantined) FROM quarantine_minutely")
    assert rows == _one(con, "SELECT sum(quarantined) FROM quarantine_daily")
    first, last = con.execute(
        "SELECT min(created_at), max(created_at) FROM quarantine_rows"
    ).fetchone()  # type: ignore[misc]
    assert first >= NOW - timedelta(days=31)
    assert last < NOW.replace(minute=0)  # the live hour is left to the real rollup
    assert _one(con, "SELECT count(DISTINCT day) FROM quarantine_daily") >= 28  # type: ignore[operator]
    # once per demo directory
    assert history.backfill_history(demo_dir, demo_dir / "archive", NOW) == 0
    assert json.loads((demo_dir / demo.DEMO_MARKER).read_text())["historyUntil"]


def test_history_tells_the_story(demo_dir: Path) -> None:
    con = files.open_archive(demo_dir / "archive")
    peak = """SELECT max(n) FROM (SELECT minute, sum(quarantined) n FROM quarantine_minutely
              WHERE metric = '{m}' AND repo_full_name = '{r}' {extra} GROUP BY minute)"""
    storm = _one(con, peak.format(m="preview.strict_mismatch", r="globex/site", extra=""))
    assert storm > QUARANTINE_ALERT_PER_MINUTE  # type: ignore[operator]
    calm = _one(
        con,
        peak.format(
            m="preview.strict_mismatch",
            r="globex/site",
            extra=f"AND day <> DATE '{(NOW + timedelta(days=history.STORM[1])).date()}'",
        ),
    )
    assert calm <= QUARANTINE_ALERT_PER_MINUTE  # type: ignore[operator]
    spike = _one(con, peak.format(m="preview.missing_end_sha", r="initech/app", extra=""))
    assert spike >= 3 * _one(  # type: ignore[operator]
        con,
        peak.format(
            m="preview.missing_end_sha",
            r="initech/app",
            extra=f"AND day <> DATE '{(NOW + timedelta(days=history.END_SHA_SPIKE[1])).date()}'",
        ),
    )
    legacy = """SELECT coalesce(sum(quarantined), 0) FROM quarantine_daily
                WHERE metric = 'preview.legacy_mode' AND day BETWEEN DATE '{a}' AND DATE '{b}'"""
    first_week = _one(
        con, legacy.format(a=(NOW - timedelta(days=30)).date(), b=(NOW - timedelta(days=24)).date())
    )
    last_week = _one(con, legacy.format(a=(NOW - timedelta(days=6)).date(), b=NOW.date()))
    assert first_week > 3 * last_week  # type: ignore[operator]  # the tail shrinks
    weekday, weekend = con.execute(
        """SELECT avg(n) FILTER (WHERE dayofweek(day) BETWEEN 1 AND 5),
                  avg(n) FILTER (WHERE dayofweek(day) IN (0, 6))
           FROM (SELECT day, sum(quarantined) n FROM quarantine_daily GROUP BY day)"""
    ).fetchone()  # type: ignore[misc]
    assert weekday > 2 * weekend


def test_demo_data_never_lands_in_a_non_demo_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "pg").mkdir(parents=True)
    with pytest.raises(demo.NotADemoDirectory, match="non-demo installation"):
        demo.claim_demo_dir(real)
    with pytest.raises(demo.NotADemoDirectory, match="not a demo data directory"):
        history.backfill_history(real, real / "archive", NOW)
    assert not (real / "archive").exists() and not (real / demo.DEMO_MARKER).exists()
    marked = tmp_path / "marked"
    demo.claim_demo_dir(marked)
    with pytest.raises(demo.NotADemoDirectory, match="outside the demo data directory"):
        history.backfill_history(marked, real / "archive", NOW)
    assert not (real / "archive").exists()


@pytest.fixture(name="fresh_settings")
def fx_fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_up_demo_refuses_a_non_demo_directory_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    (real / "pg").mkdir(parents=True)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("VALKEY_URL", raising=False)
    result = CliRunner().invoke(main, ["up", "--demo", "--data-dir", str(real)])
    assert result.exit_code == 1
    assert "non-demo installation" in result.output
    assert sorted(p.name for p in real.iterdir()) == ["pg"]  # nothing written, nothing started

    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:1/real")
    get_settings.cache_clear()  # read once per process: read again with DATABASE_URL set
    result = CliRunner().invoke(main, ["up", "--demo", "--data-dir", str(tmp_path / "new")])
    assert result.exit_code == 1
    assert "unset DATABASE_URL" in result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.usefixtures("fresh_settings")
def test_up_demo_outside_a_checkout_says_so_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo is the checkout's (`tools/demo`): the installed package never runs code from
    where it is installed, so without a checkout `--demo` stops, naming why."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("VALKEY_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["up", "--demo", "--data-dir", str(tmp_path / "new")])
    assert result.exit_code == 1
    assert "from the source checkout" in result.output
    assert not (tmp_path / "new").exists()


def test_the_checkout_is_found_from_any_directory_inside_it() -> None:
    root = Path(__file__).resolve().parents[2]
    assert demo.find_checkout(root / "tests" / "tools") == root
    assert (root / "tools" / "demo" / "history.py").is_file()
