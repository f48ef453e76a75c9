"""`docs/configuration.md`'s table and `.env.example` are what the settings objects render
(`tools/settings_table.py`), and the env readers behave as their declarations say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import tools.settings_table as settings_table
from terragon_core.env import EnvVar, env_var, env_vars
from terragon_daemon import settings as daemon_settings
from terragon_dashboard.settings import DashboardSettings
from terragon_ingest.settings import ServerSettings, Settings


def test_the_generated_files_are_current() -> None:
    stale = settings_table.stale()
    assert not stale, (
        f"stale: {', '.join(p.name for p in stale)}; regenerate with "
        f"`{settings_table.WRITE_COMMAND}`"
    )


def test_every_variable_is_documented_once_with_its_deployables() -> None:
    rows = {row.var.name: row for row in settings_table.rows()}
    assert rows["TERRAGON_EMBEDDED_PG_FAST"].deployables == ["service"]
    assert rows["TERRAGON_DATA_DIR"].deployables == ["service", "dashboard"]
    assert rows["TERRAGON_DAEMON_SOCKET"].deployables == ["daemon"]
    for row in rows.values():
        assert row.var.doc.strip(), row.var.name
    table = settings_table.render_table()
    assert table.count("| `TERRAGON_DATA_DIR` |") == 1


def test_a_new_configuration_md_gets_a_title_and_the_markers() -> None:
    text = settings_table.configuration_md(None)
    assert text.startswith("# Configuration")
    assert settings_table.render_table() in text


def test_typed_reads() -> None:
    env = {
        "N": "12",
        "F": "0.5",
        "B": "off",
        "L": " a, ,b ",
        "E": "",
        "S": "",
    }
    assert EnvVar("N", "int", 1, "n").read(env) == 12
    assert EnvVar("F", "float", 1.0, "f").read(env) == 0.5
    assert EnvVar("B", "bool", True, "b").read(env) is False
    assert EnvVar("L", "list", (), "l").read(env) == ("a", "b")
    assert EnvVar("E", "int", 7, "empty is unset").read(env) == 7
    assert EnvVar("S", "str", "dev", "a secret set empty stays empty", secret=True).read(env) == ""
    assert EnvVar("R", "str", None, "r", fallbacks=("N",)).read(env) == "12"
    with pytest.raises(ValueError, match="X must be an integer, got 'many'"):
        EnvVar("X", "int", 1, "x").read({"X": "many"})


def test_settings_read_the_environment_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERRAGON_DB_POOL_MAX", "4")
    monkeypatch.delenv("TERRAGON_DB_POOL_MIN", raising=False)
    monkeypatch.setenv("TERRAGON_EMBEDDED_PG_FAST", "1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "auto")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM", "false")
    settings = Settings()
    assert (settings.db.POOL_MAX, settings.db.POOL_MIN, settings.db.EMBEDDED_FAST) == (4, 4, True)
    assert settings.objects.REGION == "auto"
    assert settings.preview.ALLOW_PRIVATE_UPSTREAM is False
    assert settings.preview.ALLOW_PRIVATE_UPSTREAM_GIVEN is True
    assert env_var(ServerSettings, "DATA_DIR").read() == Path(".data")
    assert DashboardSettings().bucket.REGION == "auto"


def test_every_field_of_the_service_settings_is_declared() -> None:
    declared = {path for path, _ in env_vars(Settings)}
    for group in dataclasses.fields(Settings):
        for f in dataclasses.fields(group.default_factory()):  # type: ignore[misc]
            if f.name.endswith("_GIVEN"):  # derived from a declared variable
                continue
            assert f"{group.name}.{f.name}" in declared


def test_the_daemons_reader_has_the_shape_of_cores() -> None:
    """The daemon cannot import core (stdlib-only zipapp): its `EnvVar` keeps core's field names
    so the table reads both."""
    daemon_fields = [f.name for f in dataclasses.fields(daemon_settings.EnvVar)]
    core_fields = [f.name for f in dataclasses.fields(EnvVar)]
    assert set(daemon_fields) <= set(core_fields)
    env = daemon_settings.DaemonEnvironment.read({"TERRAGON_DAEMON_HOME": "/srv/d"})
    assert (env.socket, env.spool_dir, env.log_level) == (
        Path("/srv/d/daemon.sock"),
        Path("/srv/d/spool"),
        "info",
    )
