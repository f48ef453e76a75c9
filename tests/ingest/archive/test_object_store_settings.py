"""Careless or hostile object-store settings: a wrong secret, a bucket that does not exist and an
endpoint that accepts connections but never answers each end in a one-line error that names the
setting to check — never a hang (every request is bounded: OBJECT_STORE_TIMEOUT, two retries),
never a traceback, and never the secret itself, in the answer or in the logs."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from terragon_ingest.settings import Settings
from tests.fixtures.daemon_events import envelope, post
from tests.fixtures.runs import start_run
from tests.fixtures.settings import settings_for
from tools.s3_server import S3Target

TERRAGON = str(Path(sys.executable).parent / "terragon")
WRONG_SECRET = "wrong-secret-" + "Zq9" * 12
BOUND = 90
"""Seconds a failing command may take at most (OBJECT_STORE_TIMEOUT=1: ~3 s per request);
a hang would run into it."""


@pytest.fixture(name="blackhole")
def fx_blackhole() -> Iterator[str]:
    """An endpoint that completes the TCP handshake (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _terragon(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TERRAGON, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "OBJECT_STORE_TIMEOUT": "1", **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def _assert_clear_failure(result: subprocess.CompletedProcess[str], *names: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for name in names:
        assert name in output, output
    assert WRONG_SECRET not in output


@pytest.mark.parametrize("case", ["wrong secret", "no such bucket", "endpoint never answers"])
def test_archive_sql_names_the_setting(
    case: str, s3: S3Target, blackhole: str, tmp_path: Path
) -> None:
    env = {"TERRAGON_ARCHIVE_URL": f"{s3.url}/archive"}
    if case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = WRONG_SECRET
    elif case == "no such bucket":
        env["TERRAGON_ARCHIVE_URL"] = f"s3://no-such-bucket-{os.getpid()}/archive"
    else:
        env["OBJECT_STORE_S3_ENDPOINT"] = blackhole
    result = _terragon(
        "archive", "sql", "SELECT count(*) FROM quarantine_daily", cwd=tmp_path, env=env
    )
    _assert_clear_failure(result, "TERRAGON_ARCHIVE_URL", "OBJECT_STORE_S3_ENDPOINT")
    if case == "wrong secret":
        assert "AWS_SECRET_ACCESS_KEY" in result.stderr


@pytest.mark.parametrize("case", ["wrong secret", "endpoint never answers"])
def test_archive_rollup_names_the_setting(
    case: str, database_url: str, s3: S3Target, blackhole: str, tmp_path: Path
) -> None:
    from tests.ingest.archive.test_archive_rollup import _seed_days

    _seed_days(database_url)
    env = {"DATABASE_URL": database_url, "TERRAGON_ARCHIVE_URL": f"{s3.url}/archive"}
    if case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = WRONG_SECRET
    else:
        env["OBJECT_STORE_S3_ENDPOINT"] = blackhole
    result = _terragon("archive", "rollup", cwd=tmp_path, env=env)
    _assert_clear_failure(result, "TERRAGON_ARCHIVE_URL", "AWS_ACCESS_KEY_ID")
    assert s3.child("archive").list_keys() == []


@pytest.fixture(name="settings")
def fx_settings(
    database_url: str,
    valkey_url: str,
    tmp_path: Path,
    s3: S3Target,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The service offloading payloads to the bucket with a wrong secret."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)
    base = settings_for(database_url, valkey_url, tmp_path)
    return dataclasses.replace(
        base,
        objects=dataclasses.replace(base.objects, URL=f"{s3.url}/objects", TIMEOUT=1.0),
    )


async def test_offload_with_a_wrong_secret_answers_503_and_logs_no_secret(
    client, s3: S3Target
) -> None:
    _, token = await start_run(client)
    large = envelope("zombie", 1, messages=[{"type": "assistant", "text": "x" * 40_000}])
    with structlog.testing.capture_logs() as logs:
        response = await post(client, large, token)
    assert response.status_code == 503, response.text
    assert WRONG_SECRET not in response.text
    assert "OBJECT_STORE_URL" not in response.text  # the answer says "unavailable", nothing more
    [failed] = [e for e in logs if e["event"] == "envelope_unavailable"]
    assert "OBJECT_STORE_URL" in failed["error"] and "AWS_SECRET_ACCESS_KEY" in failed["error"]
    text = repr(logs)
    assert WRONG_SECRET not in text
    assert s3.child("objects").list_keys() == []
