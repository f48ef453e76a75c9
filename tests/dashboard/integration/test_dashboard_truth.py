"""One truth on the page (issue 24 item 1), under `streamlit.testing` over a seeded installation
with a storm day (`tests/dashboard/storm.py`): every panel follows the days, the Reason and the
Repo/User/Provider filters; a past day's rows come from the archive with commands that run as
printed; the alert is named by its threshold, drawn only where it applies; offenders rank by the
metric chosen; a series has one colour on every chart; empty states say why."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from terragon_core import QUARANTINE_ALERT, QuarantineReason
from terragon_dashboard.charts import THRESHOLD_COLOUR
from tests.dashboard.integration.test_dashboard_app import APP, _option_address
from tests.dashboard.storm import (
    NOISY_REPO,
    OLD_REPO,
    STORM_REPO,
    Storm,
    clean_env,
    seed_storm,
    storm_database,
)

REPO_ROOT = Path(__file__).parents[3]
R = QuarantineReason


@pytest.fixture(name="storm", scope="module")
def fx_storm(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storm]:
    with storm_database(pg_admin_url, template_database) as url:
        yield seed_storm(url, tmp_path_factory.mktemp("storm-data"))


@pytest.fixture(name="page")
def fx_page(storm: Storm, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The page as `terragon up` starts it for this installation, on the storm day."""
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(storm.archive))
    monkeypatch.setenv("TERRAGON_DATA_DIR", str(storm.data_dir))
    monkeypatch.setenv("DATABASE_URL", storm.database_url)
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.delenv("TERRAGON_DASHBOARD_AUTH", raising=False)
    monkeypatch.setattr(streamlit, "get_option", _option_address("127.0.0.1", streamlit.get_option))
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    at.date_input(key="range").set_value((storm.day, storm.day))
    return _run(at)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def _specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")]


def _text(at: AppTest) -> str:
    shown = [*at.caption, *at.info, *at.markdown]
    return "\n".join(str(e.value) for e in shown)


def test_a_past_day_lists_that_days_rows_of_the_reason_with_its_archive_commands(
    page: AppTest, storm: Storm
) -> None:
    page.multiselect(key="reasons").set_value([R.MISSING_RUN_ID.value])
    _run(page)
    offenders = page.dataframe[0].value
    assert offenders["repo"].iloc[0] == STORM_REPO  # ranked by the reason filtered
    rows = page.dataframe[1].value
    assert set(rows["reason"]) == {R.MISSING_RUN_ID.value}
    assert {t.date() for t in rows["created_at"]} == {storm.day}  # none of the live hour
    assert len(rows) == 60 + 4 + 6  # the storm, the noisy repo's four, the archived six
    assert set(rows["stored"]) == {"archive"}
    # the newest row is the storm's, still in Postgres: the archive's line, then show/replay
    assert rows["id"].iloc[0] == storm.storm_ids[0]
    lines = page.code[0].value.splitlines()
    assert [shlex.split(x)[3:5] for x in lines] == [
        ["archive", "sql"],
        ["quarantine", "show"],
        ["quarantine", "show"],
        ["quarantine", "replay"],
    ]
    assert all(f"--data-dir {storm.data_dir}" in x for x in lines), lines
    assert all(storm.database_url not in x for x in lines)  # `--data-dir` finds it

    # a row Postgres no longer holds: the archive's line only, and it runs as printed
    page.multiselect(key="repos").set_value([OLD_REPO])
    _run(page)
    rows = page.dataframe[1].value
    assert list(rows["id"]) == storm.old_ids
    (line,) = page.code[0].value.splitlines()
    assert "PostgreSQL no longer holds this row" in _text(page)
    done = subprocess.run(
        line, shell=True, cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (archived,) = json.loads(done.stdout)
    assert archived["id"] == storm.old_ids[0]
    assert archived["repo_full_name"] == OLD_REPO and archived["reason"] == R.MISSING_RUN_ID


def test_offenders_rank_by_the_metric_chosen(page: AppTest) -> None:
    assert page.dataframe[0].value["repo"].iloc[0] == NOISY_REPO  # the most rows, all reasons
    page.selectbox(key="rank_by").set_value("strict_mismatch")
    _run(page)
    table = page.dataframe[0].value
    assert table["repo"].iloc[0] == STORM_REPO
    assert list(table["strict_mismatch"]) == sorted(table["strict_mismatch"], reverse=True)


def test_the_alert_is_named_and_its_threshold_drawn_only_per_repo(page: AppTest) -> None:
    specs = _specs(page)
    assert specs and all(s["layer"][1]["mark"]["type"] == "rule" for s in specs)
    # the rule's tooltip names the alert (its data travels beside the spec)
    assert any(t["field"] == "alert" for t in specs[0]["layer"][1]["encoding"]["tooltip"])
    chart = page.get("vega_lite_chart")[0].proto
    labels = [
        pa.ipc.open_stream(d.data.data).read_all().to_pydict().get("alert", [])
        for d in chart.datasets
    ]
    assert any(QUARANTINE_ALERT in label for found in labels for label in found), labels
    assert f"`{QUARANTINE_ALERT}` pages when one repo's" in _text(page)
    # one colour per repo on every chart, never the threshold's
    seen: dict[str, str] = {}
    for spec in specs:
        scale = spec["layer"][0]["encoding"]["color"]["scale"]
        for name, colour in zip(scale["domain"], scale["range"], strict=True):
            assert seen.setdefault(name, colour) == colour, (name, seen[name], colour)
            assert colour != THRESHOLD_COLOUR
    assert STORM_REPO in seen

    page.selectbox(key="dimension").set_value("user")
    _run(page)
    specs = _specs(page)
    assert specs and all("layer" not in s for s in specs)  # a user's line pages no one
    assert "No threshold line: the alert is per repo" in _text(page)


def test_empty_states_tell_nothing_from_filtered_out(page: AppTest, storm: Storm) -> None:
    page.multiselect(key="repos").set_value([STORM_REPO])
    _run(page)
    infos = [i.value for i in page.info]
    assert f"No preview.legacy_mode in {storm.day} matching the filters (100 without them)." in (
        infos
    ), infos
    page.multiselect(key="repos").set_value([])
    quiet = storm.day - timedelta(days=5)
    page.date_input(key="range").set_value((quiet, quiet))
    _run(page)
    infos = [i.value for i in page.info]
    assert f"No preview.legacy_mode in {quiet}: nothing was quarantined." in infos, infos
    assert f"No quarantine rows in {quiet}: nothing was quarantined." in infos, infos
