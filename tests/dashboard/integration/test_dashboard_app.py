"""The Streamlit app under `streamlit.testing`: charts, filters, the dimension switch, the live
hour from Postgres, and the full-size archive (30 days of aggregates for 1 000 repos; its load
time is measured by `python -m tools.bench --only dashboard`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from terragon_core import DASHBOARD_SESSION_COOKIE, QuarantineReason
from terragon_dashboard import archive, auth
from tests.dashboard.seed import Row, connect, insert_quarantine
from tools.bench.synthetic_archive import generate_archive

APP = Path(__file__).parents[3] / "apps/dashboard/src/terragon_dashboard/app.py"
LAST_DAY = date(2026, 11, 25)
REPOS = {"acme/repo-0000", "acme/repo-0001", "acme/repo-0002"}


@pytest.fixture(name="small_archive", scope="module")
def fx_small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    generate_archive(root, last_day=LAST_DAY, days=3, repos=3, rows_per_minute=1, users=2)
    return root


@pytest.fixture(name="app_env")
def fx_app_env(monkeypatch: pytest.MonkeyPatch, small_archive: Path) -> None:
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(small_archive))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TERRAGON_DASHBOARD_AUTH", raising=False)
    # as `terragon dashboard` serves it: on 127.0.0.1, where payload prefixes may show unsigned
    monkeypatch.setattr(streamlit, "get_option", _option_address("127.0.0.1", streamlit.get_option))
    return


def _option_address(address: str, get_option: Callable[[str], Any]) -> Callable[[str], Any]:
    def patched(key: str) -> Any:
        return address if key == "server.address" else get_option(key)

    return patched


def _run(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[tuple[str, pa.Table]]:
    """(title, data) of every Altair chart on the page."""
    found = []
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        title = spec.get("description", "")
        data = pa.ipc.open_stream(element.proto.datasets[0].data.data).read_all()
        found.append((title, data))
    return found


def _series(at: AppTest) -> set[str]:
    return {s for _, data in _charts(at) for s in data.column("series").to_pylist()}


def test_three_trend_charts_with_data_and_threshold(app_env: None) -> None:
    at = _run()
    charts = _charts(at)
    assert [title.split(" ")[0] for title, _ in charts] == [
        "strict_mismatch",
        "legacy_mode",
        "missing_end_sha",
    ]
    assert all(data.num_rows > 0 for _, data in charts)
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["layer"][1]["mark"]["type"] == "rule"
    assert _series(at) == REPOS
    assert len(at.dataframe) == 2  # top offenders + recent rows
    assert set(at.dataframe[1].value.columns) >= {
        "payload_prefix_2k",
        "payload_hash",
        "payload_object_key",
    }
    assert any("DATABASE_URL is not set" in i.value for i in at.info)


def test_dimension_switch_splits_by_user_and_provider(app_env: None) -> None:
    at = _run()
    at.selectbox(key="dimension").set_value("user")
    _run(at)
    assert _series(at) == {"user-0", "user-1"}
    assert next(iter(at.dataframe[0].value.columns)) == "user"
    at.selectbox(key="dimension").set_value("provider")
    _run(at)
    assert _series(at) == {"docker", "e2b"}


def test_filters_narrow_every_view(app_env: None) -> None:
    at = _run()
    at.multiselect(key="repos").set_value(["acme/repo-0001"])
    _run(at)
    assert _series(at) == {"acme/repo-0001"}
    assert list(at.dataframe[0].value["repo"]) == ["acme/repo-0001"]

    at.multiselect(key="repos").set_value([])
    at.multiselect(key="reasons").set_value([QuarantineReason.LEGACY_MODE.value])
    _run(at)
    assert [t.split(" ")[0] for t, _ in _charts(at)] == ["legacy_mode"]
    assert sum("No preview." in i.value for i in at.info) == 2

    at.multiselect(key="reasons").set_value([])
    at.multiselect(key="users").set_value(["user-0"])
    at.multiselect(key="providers").set_value(["docker"])
    _run(at)
    assert _series(at) <= {r for r in REPOS if int(r[-1]) % 2 == 0}

    at.multiselect(key="users").set_value([])
    at.multiselect(key="providers").set_value([])
    at.date_input(key="range").set_value((LAST_DAY, LAST_DAY))
    _run(at)
    buckets = {b for _, data in _charts(at) for b in data.column("bucket").to_pylist()}
    assert len(buckets) > 24  # per minute on a one-day range
    assert {b.date() for b in buckets} == {LAST_DAY}


def test_empty_archive_renders_without_charts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(tmp_path))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    at = _run()
    assert _charts(at) == []
    assert sum("No preview." in i.value for i in at.info) == 3


def test_live_hour_reads_postgres(
    monkeypatch: pytest.MonkeyPatch, small_archive: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    rows = [
        Row(
            at=now - timedelta(minutes=m), reason=QuarantineReason.MISSING_END_SHA, repo="acme/live"
        )
        for m in range(1, 8)
    ]
    with connect(database_url) as conn:
        insert_quarantine(conn, rows)
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(small_archive))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("TERRAGON_DATA_DIR", raising=False)
    at = _run()
    at.date_input(key="range").set_value((LAST_DAY, now.date()))  # the archive's day and today
    _run(at)
    live = [data for title, data in _charts(at) if title.startswith("last hour")]
    assert len(live) == 1
    assert set(live[0].column("series").to_pylist()) == {"acme/live"}
    assert set(live[0].column("metric").to_pylist()) == {"preview.missing_end_sha"}
    assert sum(live[0].column("per_minute").to_pylist()) == 7
    recent = at.dataframe[1].value
    assert all(len(h) == 64 for h in recent["payload_hash"])
    # today's rows from Postgres first (newest first), then the archive's older rows
    assert list(recent["repo_full_name"][:7]) == ["acme/live"] * 7
    assert list(recent["stored"][:7]) == ["postgres"] * 7
    assert "acme/live" not in set(recent["repo_full_name"][7:])
    assert set(recent["stored"][7:]) == {"archive"}
    newest = str(recent["id"].iloc[0])
    assert newest == rows[0].id
    # the exact commands for the row picked (the newest until one is clicked): in Postgres and
    # not archived yet, so show / --payload / replay only, with the database's flag (no password)
    commands = at.code[0].value.splitlines()
    assert len(commands) == 3, commands
    assert commands[0].startswith("uv run terragon quarantine show --database-url ")
    assert commands[0].endswith(f" {newest}")
    assert commands[1].endswith(f" --payload {newest}")
    assert commands[2].startswith("uv run terragon quarantine replay ")

    # the Reason filter reaches Postgres: the live chart and today's rows follow it
    at.multiselect(key="reasons").set_value([QuarantineReason.LEGACY_MODE.value])
    _run(at)
    assert not [t for t, _ in _charts(at) if t.startswith("last hour")]
    assert any(
        "in the last hour matching the filters (7 without them)" in i.value for i in at.info
    ), [i.value for i in at.info]
    recent = at.dataframe[1].value
    assert set(recent["reason"]) == {QuarantineReason.LEGACY_MODE.value}
    assert "acme/live" not in set(recent["repo_full_name"])


def test_renders_30_days_for_1000_repos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The full-size archive renders every chart. How fast is `python -m tools.bench --only
    dashboard` (a speed, not a test: it would flake on a loaded machine)."""
    generate_archive(tmp_path, last_day=LAST_DAY, days=30, repos=1000, rows_per_minute=25)
    con = archive.open_archive(tmp_path)
    assert len(archive.choices(con).repos) == 1000
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(tmp_path))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    at = _run()
    assert len(_charts(at)) == 3
    assert all(data.num_rows > 0 for _, data in _charts(at))


PASSWORD = "correct horse battery staple"


def _browser_cookies(monkeypatch: pytest.MonkeyPatch, cookies: dict[str, str]) -> None:
    """What `st.context.cookies` reads (AppTest cannot seed cookies; a browser sends them with
    the websocket)."""
    monkeypatch.setattr(type(streamlit.context), "cookies", property(lambda _: cookies))


def test_sign_in_gates_the_page_when_configured(
    app_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page runs only for a browser with a valid session cookie (the edge's sign-in form
    issues it); a forged one, or one signed out, shows nothing."""
    monkeypatch.setenv("TERRAGON_DASHBOARD_AUTH", "password")
    monkeypatch.setenv("TERRAGON_DASHBOARD_PASSWORD", PASSWORD)
    cookies: dict[str, str] = {}
    _browser_cookies(monkeypatch, cookies)
    at = _run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert _charts(at) == [] and len(at.dataframe) == 0

    valid = auth.SESSIONS.issue()
    cookies[DASHBOARD_SESSION_COOKIE] = valid[:-4] + "0000"  # forged: signature mismatch
    _run(at)
    assert [t.value for t in at.title] == ["Sign in"] and _charts(at) == []

    cookies[DASHBOARD_SESSION_COOKIE] = valid
    _run(at)
    assert len(_charts(at)) == 3
    assert "payload_prefix_2k" in at.dataframe[1].value.columns

    at.sidebar.button[0].click()  # Sign out
    _run(at)
    assert [t.value for t in at.title] == ["Sign in"]
    assert any("signed out" in i.value for i in at.info)
    assert _charts(at) == [] and len(at.dataframe) == 0
    assert not auth.SESSIONS.check(valid).ok  # the cookie is dead for every tab and a reload


def test_misconfigured_sign_in_shows_nothing(
    app_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERRAGON_DASHBOARD_AUTH", "password")
    monkeypatch.setenv("TERRAGON_DASHBOARD_PASSWORD", "short")
    at = _run()
    assert any("misconfigured" in e.value for e in at.error)
    assert _charts(at) == [] and len(at.dataframe) == 0 and len(at.text_input) == 0


def test_without_sign_in_off_loopback_the_prefixes_are_hidden(
    monkeypatch: pytest.MonkeyPatch, small_archive: Path
) -> None:
    monkeypatch.setenv("TERRAGON_ARCHIVE_DIR", str(small_archive))
    monkeypatch.setenv("TERRAGON_DASHBOARD_REFRESH_SECONDS", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TERRAGON_DASHBOARD_AUTH", raising=False)
    monkeypatch.setattr(streamlit, "get_option", _option_address("0.0.0.0", streamlit.get_option))
    at = _run()
    assert len(_charts(at)) == 3
    columns = set(at.dataframe[1].value.columns)
    assert "payload_prefix_2k" not in columns and "payload_hash" in columns


def test_offenders_count_absent_reasons_as_zero(app_env: None) -> None:
    at = _run()
    offenders = at.dataframe[0].value
    assert len(offenders) > 0
    assert not offenders.isna().any().any(), offenders
    at.multiselect(key="reasons").set_value([QuarantineReason.LEGACY_MODE.value])
    _run(at)
    offenders = at.dataframe[0].value
    assert len(offenders) > 0
    assert list(offenders["strict_mismatch"]) == [0] * len(offenders)  # absent, so 0 (not None)
