"""The route's own edges: its body cap answers 413 with a `status` body (Litestar's limit does not
pre-empt it), and outages answer 503 `unavailable` with Retry-After and write nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import psycopg
import psycopg.conninfo
import pytest
from litestar.testing import AsyncTestClient

from terragon_ingest.app import create_app
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.daemon_events import envelope, post, quarantine_rows, run_state
from tests.fixtures.runs import start_run
from tests.fixtures.settings import settings_for

CAP = 4096


@pytest.fixture(name="small_app")
def fx_small_app(database_url, valkey_url, tmp_path):
    return create_app(settings_for(database_url, valkey_url, tmp_path, MAX_BODY_BYTES=CAP))


@pytest.fixture(name="small_client")
async def fx_small_client(small_app) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=small_app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        yield client


async def test_body_over_the_cap_is_413_too_large(small_client) -> None:
    run_id, token = await start_run(small_client)
    body = envelope(run_id, 1, messages=[{"type": "assistant", "text": "x" * CAP}])
    response = await post(small_client, body, token)
    assert response.status_code == 413
    assert response.json()["status"] == "too_large"
    assert (await run_state(small_client, run_id))["acceptedEventCount"] == 0
    # Just under the cap is fine.
    fits = envelope(run_id, 1, messages=[{"type": "assistant", "text": "x" * (CAP - 400)}])
    assert (await post(small_client, fits, token)).status_code == 200


async def test_database_outage_is_503_unavailable(client, pg_admin_url, database_url) -> None:
    run_id, token = await start_run(client)
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    async with await psycopg.AsyncConnection.connect(pg_admin_url, autocommit=True) as admin:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    response = await post(client, envelope(run_id, 1), token, traceparent=traceparent)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert int(response.headers["retry-after"]) >= 1
    # A fixed message and the trace id; the driver's text stays in the log (CONTRACT §4).
    assert response.json()["traceId"] == trace_id
    assert response.json()["error"] == "PostgreSQL is unavailable."
    for leak in ("connection", "psycopg", "FATAL", name):
        assert leak not in response.text
    del run_id  # nothing can be read back while the database refuses connections


async def test_object_store_outage_is_503_and_writes_no_row(client, app, tmp_path) -> None:
    from obstore.store import LocalStore

    from terragon_ingest.objects import QuarantineObjects

    root = tmp_path / "store"
    root.mkdir()
    broken = QuarantineObjects(LocalStore(root), "broken")
    app.state.daemon_events = dataclasses.replace(app.state.daemon_events, objects=broken)
    root.rmdir()
    root.write_text("a file where the store's directory was: every put fails")
    _, token = await start_run(client)
    # An oversized mismatch must be offloaded before its row is written; the store refuses.
    body = envelope("zombie", 1, messages=[{"type": "assistant", "text": "x" * 20_000}])
    response = await post(client, body, token)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.headers["retry-after"]
    assert await quarantine_rows(client) == []


async def test_openapi_documents_every_daemon_event_status(client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    responses = schema["paths"]["/api/daemon-event"]["post"]["responses"]
    assert {"200", "202", "400", "401", "403", "413", "503"} <= set(responses)
    paths = schema["paths"]
    assert "/api/internal/quarantine" in paths
    assert "/api/internal/maintenance/sweep" in paths
    assert "/api/internal/ui-validation/{thread_id}/{thread_chat_id}" in paths
