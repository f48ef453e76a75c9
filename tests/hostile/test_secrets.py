"""A careless operator and a stranger with a default secret (CONTRACT §3).

`terragon serve` (anything but the embedded `terragon up`) refuses to start on an unset, empty,
development-default or short secret, naming the variable and how to make a good one; a real
process is started for each case. An empty or malformed `Authorization` or `X-Hub-Signature-256`
header never authenticates, whatever the service was configured with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from terragon_ingest.app import create_app
from terragon_ingest.settings import (
    DEV_INTERNAL_TOKEN,
    DEV_METRICS_TOKEN,
    DEV_WEBHOOK_SECRET,
    MAKE_SECRET_COMMAND,
    Settings,
)
from tests.fixtures.net import free_port
from tests.fixtures.settings import good_secrets
from tests.ingest.cli.test_cli_up import TERRAGON, _status

SECRET_VARIABLES = (
    "TERRAGON_INTERNAL_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "TERRAGON_SIGNING_SECRET",
    "TERRAGON_METRICS_TOKEN",
)
DEV_DEFAULTS = {
    "TERRAGON_INTERNAL_TOKEN": DEV_INTERNAL_TOKEN,
    "GITHUB_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET,
    "TERRAGON_METRICS_TOKEN": DEV_METRICS_TOKEN,
}


def _serve_env(database_url: str, valkey_url: str, data_dir: Path, **secret: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= good_secrets() | {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_DATA_DIR": str(data_dir),
        "TERRAGON_BACKGROUND_JOBS": "false",
        "TERRAGON_ENV": "production",
    }
    for name, value in secret.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _run_serve(env: dict, *extra: str) -> tuple[int | None, str, bool]:
    """Start `terragon serve`; (exit code or None if it kept running, its output: the log on
    stdout and a refusal on stderr, whether it served)."""
    port = free_port()
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--port", str(port), *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    served = False
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if _status(f"http://127.0.0.1:{port}/readyz") == 200:
                served = True
                break
            time.sleep(0.1)
    finally:
        code = proc.poll()
        if code is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    output = proc.stdout.read().decode() if proc.stdout else ""
    return code, output, served


CASES = [
    (name, case, value)
    for name in SECRET_VARIABLES
    for case, value in [
        ("unset", None),
        ("empty", ""),
        ("dev-default", DEV_DEFAULTS.get(name)),
        ("31-bytes", "x" * 31),
        ("padded", " " + secrets.token_urlsafe(32)),
    ]
    if not (case == "dev-default" and name not in DEV_DEFAULTS)  # signing's default is "unset"
]


@pytest.mark.parametrize(("name", "case", "value"), CASES, ids=[f"{n}-{c}" for n, c, _ in CASES])
def test_serve_refuses_an_unsafe_secret_naming_it(
    database_url: str, valkey_url: str, tmp_path: Path, name: str, case: str, value: str | None
) -> None:
    env = _serve_env(database_url, valkey_url, tmp_path, **{name: value})
    code, output, served = _run_serve(env)
    assert not served, f"serve started with {name} {case}"
    assert code not in (None, 0), output
    assert name in output, output
    assert MAKE_SECRET_COMMAND in output, output
    assert "Traceback" not in output, output
    # Only the unsafe one is named: the operator knows what to fix.
    assert not [other for other in SECRET_VARIABLES if other != name and other in output]


def test_serve_under_env_dev_names_every_unsafe_secret_at_once(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    """The contract says outside `up`, whatever TERRAGON_ENV says: dev is no exemption."""
    env = _serve_env(database_url, valkey_url, tmp_path, **dict.fromkeys(SECRET_VARIABLES))
    env["TERRAGON_ENV"] = "dev"
    code, output, served = _run_serve(env)
    assert not served and code not in (None, 0), output
    assert all(name in output for name in SECRET_VARIABLES), output
    assert "Traceback" not in output, output


def test_serve_workers_refuses_instead_of_making_a_signing_secret(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    env = _serve_env(database_url, valkey_url, tmp_path, TERRAGON_SIGNING_SECRET=None)
    code, output, served = _run_serve(env, "--workers", "2")
    assert not served and code not in (None, 0), output
    assert "TERRAGON_SIGNING_SECRET" in output, output


def test_serve_refuses_a_short_previous_signing_secret(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    env = _serve_env(database_url, valkey_url, tmp_path)
    env["TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET"] = "old"
    code, output, served = _run_serve(env)
    assert not served and code not in (None, 0), output
    assert "TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET" in output, output


def _get_internal(port: int, authorization: str | None) -> int:
    """GET an internal route over a real socket, the header sent byte for byte (http.client)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/api/internal/quarantine")
        if authorization is not None:
            connection.putheader("Authorization", authorization)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_serve_starts_with_good_secrets_and_only_its_token_opens_the_internal_api(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    env = _serve_env(database_url, valkey_url, tmp_path)
    token = env["TERRAGON_INTERNAL_TOKEN"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [TERRAGON, "--log-format", "json", "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while _status(f"{base}/readyz") != 200:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.1)
        assert _get_internal(port, f"Bearer {token}") == 200
        for header in (f"Bearer {DEV_INTERNAL_TOKEN}", "Bearer ", "Bearer", "", None):
            assert _get_internal(port, header) == 401, header
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0


def test_a_worker_refuses_unsafe_secrets_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """`uvicorn terragon_ingest.workers:create_worker_app --factory` bypasses `serve`'s check."""
    from terragon_ingest.workers import create_worker_app

    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    for name, value in good_secrets().items():
        if name != "GITHUB_WEBHOOK_SECRET":
            monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        create_worker_app()
    assert "GITHUB_WEBHOOK_SECRET" in str(exited.value.code)


def test_unsafe_secrets_accepts_good_ones_and_names_each_bad_one() -> None:
    base = Settings()
    good = good_secrets()
    server = dataclasses.replace(
        base.server,
        INTERNAL_TOKEN=good["TERRAGON_INTERNAL_TOKEN"],
        GITHUB_WEBHOOK_SECRET=good["GITHUB_WEBHOOK_SECRET"],
        SIGNING_SECRET=good["TERRAGON_SIGNING_SECRET"],
        METRICS_TOKEN=good["TERRAGON_METRICS_TOKEN"],
    )
    assert dataclasses.replace(base, server=server).unsafe_secrets() == []
    # 32 bytes is enough, counted in bytes (not characters).
    exactly = dataclasses.replace(server, INTERNAL_TOKEN="é" * 16)
    assert dataclasses.replace(base, server=exactly).unsafe_secrets() == []
    short = dataclasses.replace(server, INTERNAL_TOKEN="é" * 15 + "x")
    (problem,) = dataclasses.replace(base, server=short).unsafe_secrets()
    assert problem.startswith("TERRAGON_INTERNAL_TOKEN is 31 bytes")
    # One good secret used twice: GitHub would hold the internal token.
    shared = dataclasses.replace(server, GITHUB_WEBHOOK_SECRET=server.INTERNAL_TOKEN)
    (problem,) = dataclasses.replace(base, server=shared).unsafe_secrets()
    assert problem.startswith("GITHUB_WEBHOOK_SECRET is the same as TERRAGON_INTERNAL_TOKEN")
    # The scraper holding the signing key would forge preview tokens.
    scraper = dataclasses.replace(server, METRICS_TOKEN=server.SIGNING_SECRET)
    (problem,) = dataclasses.replace(base, server=scraper).unsafe_secrets()
    assert problem.startswith("TERRAGON_METRICS_TOKEN is the same as TERRAGON_SIGNING_SECRET")


# --- the guards themselves, through the app ---------------------------------------------------


@pytest.fixture(name="configured")
def fx_configured(settings: Settings) -> Settings:
    good = good_secrets()
    server = dataclasses.replace(
        settings.server,
        INTERNAL_TOKEN=good["TERRAGON_INTERNAL_TOKEN"],
        GITHUB_WEBHOOK_SECRET=good["GITHUB_WEBHOOK_SECRET"],
    )
    return dataclasses.replace(settings, server=server)


@pytest.fixture(name="raw_client")
async def fx_raw_client(configured: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(configured)) as client:
        yield client


def _malformed_bearers(token: str) -> list[bytes]:
    return [
        f"Bearer {DEV_INTERNAL_TOKEN}".encode(),
        b"Bearer ",
        b"Bearer",
        b"",
        b" ",
        f"Basic {token}".encode(),
        f"Bearer  {token}".encode(),  # two spaces
        f"Bearer {token} ".encode(),  # trailing whitespace in the token
        f"Bearer {token}\t".encode(),
        f"Bearer {token} extra".encode(),
        f"Bearer {token[:-1]}".encode(),
        f"{token}".encode(),
        b"Bearer \xff\xfe",  # not UTF-8
        f"Bearer {token}".encode() + b"\xc3\xa9",
    ]


async def test_internal_api_answers_401_to_every_malformed_or_default_bearer(
    raw_client: AsyncTestClient, configured: Settings
) -> None:
    token = configured.server.INTERNAL_TOKEN
    url = "/api/internal/quarantine"
    ok = await raw_client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    # The scheme is case-insensitive (RFC 9110 §11.1).
    assert (
        await raw_client.get(url, headers={"Authorization": f"bearer {token}"})
    ).status_code == 200
    for header in _malformed_bearers(token):
        response = await raw_client.get(url, headers=[(b"authorization", header)])
        assert response.status_code == 401, header
        assert response.json()["code"] == "NotAuthorizedException"


@pytest.mark.parametrize("configured_token", ["", " "])
async def test_an_empty_configured_token_never_authenticates(
    settings: Settings, configured_token: str
) -> None:
    """An app built around an empty token (the serve check bypassed) still opens to nobody."""
    server = dataclasses.replace(settings.server, INTERNAL_TOKEN=configured_token)
    app = create_app(dataclasses.replace(settings, server=server))
    async with AsyncTestClient(app=app) as client:
        for header in (b"Bearer ", b"Bearer", b"", b"Bearer  ", b"Bearer \t"):
            response = await client.get(
                "/api/internal/quarantine", headers=[(b"authorization", header)]
            )
            assert response.status_code == 401, header


def _signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _webhook_headers(signature: bytes | None) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-github-event", b"member"),
        (b"x-github-delivery", b"delivery-1"),
        (b"content-type", b"application/json"),
    ]
    if signature is not None:
        headers.append((b"x-hub-signature-256", signature))
    return headers


async def test_webhook_answers_401_to_every_malformed_or_default_signature(
    raw_client: AsyncTestClient, configured: Settings
) -> None:
    body = b'{"action": "added", "member": {"login": "m"}, "repository": {"full_name": "a/b"}}'
    good = _signed(configured.server.GITHUB_WEBHOOK_SECRET, body)
    hostile: list[bytes | None] = [
        None,
        b"",
        b"sha256",
        b"sha256=",
        b"sha1=" + good.removeprefix("sha256=").encode(),
        b"SHA256=" + good.removeprefix("sha256=").encode(),
        _signed(DEV_WEBHOOK_SECRET, body).encode(),
        _signed("", body).encode(),
        b"sha256=" + b"z" * 64,
        good.encode() + b" ",
        good.encode()[:-1],
        b"sha256=\xff\xfe" + b"0" * 62,
        b"sha256=" + b"0" * 100_000,
    ]
    for signature in hostile:
        response = await raw_client.post(
            "/api/webhooks/github", content=body, headers=_webhook_headers(signature)
        )
        assert response.status_code == 401, signature[:80] if signature else signature
        assert response.json()["code"] == "signature_mismatch"


async def test_an_empty_configured_webhook_secret_never_verifies(settings: Settings) -> None:
    """HMAC with an empty key is computable by anyone: it must not open the webhook."""
    server = dataclasses.replace(settings.server, GITHUB_WEBHOOK_SECRET="")
    app = create_app(dataclasses.replace(settings, server=server))
    body = b'{"action": "added"}'
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/webhooks/github",
            content=body,
            headers=_webhook_headers(_signed("", body).encode()),
        )
    assert response.status_code == 401
