"""The app skeleton against real PostgreSQL and Valkey: health, readiness, auth, OpenAPI, metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from terragon_core import MetricName, prometheus_name
from tests.conftest import METRICS_TOKEN
from tests.fixtures.runs import thread_body


async def test_healthz_and_readyz_answer_200(client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "valkey": "ok"}


async def test_internal_routes_require_the_bearer_token(client) -> None:
    response = await client.post(
        "/api/internal/threads", json=thread_body(), headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401
    response = await client.post("/api/internal/threads", json=thread_body())
    assert response.status_code == 201
    assert response.json()["codesandboxId"] == "sb-thread-1"


async def test_thread_upsert_is_idempotent_and_updates(client) -> None:
    first = await client.post("/api/internal/threads", json=thread_body())
    second = await client.post("/api/internal/threads", json=thread_body(repoDir="/srv/repo"))
    assert first.status_code == second.status_code == 201
    assert second.json()["repoDir"] == "/srv/repo"


async def test_thread_with_unknown_provider_is_a_400(client) -> None:
    response = await client.post("/api/internal/threads", json=thread_body(sandboxProvider="vm"))
    assert response.status_code == 400


async def test_openapi_schema_is_served(client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert "/api/internal/threads" in response.json()["paths"]


async def test_metrics_parse_and_list_every_preview_counter(client) -> None:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    families = {f.name for f in text_string_to_metric_families(response.text)}
    for metric in MetricName:
        assert prometheus_name(metric) in families


async def test_unknown_run_is_404(client) -> None:
    response = await client.get("/api/internal/runs/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
