"""A stranger scrapes `/metrics` (CONTRACT §3): its labels name every tenant's repo and user.

Under `terragon serve` it answers only to `Authorization: Bearer $TERRAGON_METRICS_TOKEN` (a
secret `serve` refuses to start without, like the others); no token, a wrong, empty or malformed
one, or the internal token get 401 from the headers alone. Under `terragon up` it stays open on
the loopback address.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from terragon_core import MetricName, prometheus_name
from terragon_ingest.app import create_app
from terragon_ingest.settings import MAKE_SECRET_COMMAND, Settings
from tests.fixtures.net import free_port
from tests.fixtures.processes import terragon_serving
from tests.hostile.test_secrets import _run_serve, _serve_env

METRICS = "TERRAGON_METRICS_TOKEN"


def _get_metrics(port: int, authorization: bytes | None) -> tuple[int, bytes]:
    """GET /metrics over a real socket, the header sent byte for byte."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/metrics")
        if authorization is not None:
            connection.putheader("Authorization", authorization)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(name="served")
def fx_served(
    database_url: str, valkey_url: str, tmp_path: Path
) -> Iterator[tuple[int, dict[str, str]]]:
    """A real `terragon serve` with every secret set (the metrics token too)."""
    env = _serve_env(database_url, valkey_url, tmp_path)
    env[METRICS] = secrets.token_urlsafe(32)
    port = free_port()
    with terragon_serving(["--log-format", "json", "serve", "--port", str(port)], env, port):
        yield port, env


def test_serve_answers_metrics_only_to_the_metrics_token(
    served: tuple[int, dict[str, str]],
) -> None:
    port, env = served
    token = env[METRICS]
    status, body = _get_metrics(port, f"Bearer {token}".encode())
    assert status == 200, body
    assert f"{prometheus_name(MetricName.ENVELOPE)}_total".encode() in body
    hostile: list[bytes | None] = [
        None,
        b"",
        b" ",
        b"Bearer",
        b"Bearer ",
        b"Bearer  ",
        b"Bearer wrong",
        b"Bearer " + secrets.token_urlsafe(32).encode(),
        f"Bearer {env['TERRAGON_INTERNAL_TOKEN']}".encode(),  # another secret is not this one
        f"Basic {token}".encode(),
        token.encode(),
        f"Bearer  {token}".encode(),
        f"Bearer {token} x".encode(),
        f"Bearer {token[:-1]}".encode(),
        f"Bearer {token}".encode() + b"\xc3\xa9",
        b"Bearer \xff\xfe",
    ]
    for header in hostile:
        status, body = _get_metrics(port, header)
        assert status == 401, header
        assert b"preview_" not in body, body  # no tenant, no series name in the refusal


def test_serve_answers_401_from_the_headers_without_reading_a_body(
    served: tuple[int, dict[str, str]],
) -> None:
    """A promised 100 MiB body that never comes: the refusal does not wait for it."""
    port, _env = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 104857600\r\n\r\n"
        )
        started = time.monotonic()
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("case", "value"),
    [("unset", None), ("empty", ""), ("dev-default", "dev-metrics-token"), ("short", "x" * 31)],
)
def test_serve_refuses_to_start_without_a_metrics_token(
    database_url: str, valkey_url: str, tmp_path: Path, case: str, value: str | None
) -> None:
    env = _serve_env(database_url, valkey_url, tmp_path)
    if value is None:
        env.pop(METRICS, None)
    else:
        env[METRICS] = value
    code, output, served = _run_serve(env)
    assert not served, f"serve started with {METRICS} {case}"
    assert code not in (None, 0), output
    assert METRICS in output and MAKE_SECRET_COMMAND in output, output
    assert "Traceback" not in output, output


def test_up_keeps_metrics_open_on_the_loopback_address(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    """`terragon up` (the development stack, bound to 127.0.0.1) with no metrics token set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERRAGON_", "PROMETHEUS_"))}
    env |= {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "TERRAGON_BACKGROUND_JOBS": "false",
    }
    port = free_port()
    data_dir = str(tmp_path / "up")
    args = ["up", "--data-dir", data_dir, "--port", str(port), "--dashboard-port", "0"]
    with terragon_serving(args, env, port, timeout=90):
        status, body = _get_metrics(port, None)
        assert status == 200, body
        assert f"{prometheus_name(MetricName.ENVELOPE)}_total".encode() in body


async def test_the_development_default_opens_to_loopback_peers_only(settings: Settings) -> None:
    """An app on the development default (what `up` runs) reached from a peer that is not the
    loopback address (the test client's `testclient`): closed, whatever it sends."""
    server = dataclasses.replace(settings.server, METRICS_TOKEN="dev-metrics-token")
    app = create_app(dataclasses.replace(settings, server=server))
    async with AsyncTestClient(app=app) as client:
        for header in (None, "Bearer dev-metrics-token", "Bearer "):
            headers = {"Authorization": header} if header is not None else {}
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401, header


async def test_a_configured_token_opens_metrics_in_process(settings: Settings) -> None:
    token = secrets.token_urlsafe(32)
    server = dataclasses.replace(settings.server, METRICS_TOKEN=token)
    app = create_app(dataclasses.replace(settings, server=server))
    async with AsyncTestClient(app=app) as client:
        ok = await client.get("/metrics", headers={"Authorization": f"bearer {token}"})
        assert ok.status_code == 200
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["code"] == "NotAuthorizedException"


@pytest.mark.parametrize(
    ("token", "security"),
    [
        ("dev-metrics-token", [{"metricsBearer": []}, {}]),
        (secrets.token_urlsafe(32), [{"metricsBearer": []}]),
    ],
    ids=["development-default", "configured"],
)
async def test_the_schema_says_whether_metrics_needs_the_bearer(
    settings: Settings, token: str, security: list[dict[str, list[str]]]
) -> None:
    """Under `up` (the development default) this machine reads /metrics without a token, and the
    schema says the bearer is optional there, so a schema check run against `up` agrees with the
    answers (before: `st run` against `up` failed `ignored_auth` on /metrics). A configured token
    is required, and the schema says so."""
    server = dataclasses.replace(settings.server, METRICS_TOKEN=token)
    app = create_app(dataclasses.replace(settings, server=server))
    async with AsyncTestClient(app=app) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    assert schema["paths"]["/metrics"]["get"]["security"] == security
