"""How `terragon up` / `terragon dashboard` launch Streamlit: toolbar in viewer mode, and an
environment without the service's secrets (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from terragon_ingest.dashboard import dashboard_argv, dashboard_env


def test_dashboard_env_passes_only_what_the_dashboard_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = {
        "TERRAGON_INTERNAL_TOKEN": "internal-secret-value-0123456789abcdef",
        "TERRAGON_SIGNING_SECRET": "signing-secret-value-0123456789abcdef",
        "GITHUB_WEBHOOK_SECRET": "webhook-secret-value-0123456789abcdef",
        "VALKEY_URL": "redis://:pw@127.0.0.1:6379/0",
        "OBJECT_STORE_URL": "s3://bucket/prefix",
        "SOMETHING_ELSE": "x",
    }
    needed = {
        "TERRAGON_DASHBOARD_AUTH": "password",
        "TERRAGON_DASHBOARD_PASSWORD": "a-long-enough-password",
        "TERRAGON_DASHBOARD_REFRESH_SECONDS": "0",
        "TERRAGON_DASHBOARD_HOSTS": "dash.example.com",
        "FORWARDED_ALLOW_IPS": "10.0.0.5",
        "AWS_ACCESS_KEY_ID": "archive-reader",
        "OBJECT_STORE_S3_ENDPOINT": "http://127.0.0.1:9000",
        "PATH": "/usr/bin",
    }
    for name, value in (secrets | needed).items():
        monkeypatch.setenv(name, value)
    env = dashboard_env(tmp_path, "postgresql://reader@db/terragon")
    assert not set(secrets) & set(env), sorted(set(secrets) & set(env))
    assert not any(v in env.values() for v in secrets.values())
    assert {k: env[k] for k in needed} == needed
    assert env["TERRAGON_ARCHIVE_DIR"] == str(tmp_path)
    assert env["DATABASE_URL"] == "postgresql://reader@db/terragon"


def test_dashboard_toolbar_is_in_viewer_mode(tmp_path: Path) -> None:
    argv = dashboard_argv("127.0.0.1", 8501, tmp_path)
    assert argv[argv.index("--client.toolbarMode") + 1] == "viewer"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    # the page behind its edge (host names, sign-in), not the bare script
    assert any(arg.endswith("terragon_dashboard/server.py") for arg in argv)
