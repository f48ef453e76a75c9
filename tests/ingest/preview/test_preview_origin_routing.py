"""Host-based routing (CONTRACT §5): the session id comes only from a Host matching
`TERRAGON_PREVIEW_ORIGIN`; a Host naming no live session is a 404; the API's own host is the API
as before, where `/__terragon/` does not exist; the old path routes answer 410 with `previewUrl`
and serve or set nothing; `upstreamOrigin` is checked against private addresses at session start
and again at proxy time; `/schema` documents the session-origin routes with their own server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import schemathesis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from terragon_core import PREVIEW_EXCHANGE_PATH, PREVIEW_SUBSCRIPTION_TOKEN_PATH
from terragon_ingest.app import create_app
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.preview import (
    Upstream,
    exchange,
    session_cookie,
    start_run,
    start_session,
)
from tests.fixtures.settings import settings_for

UNKNOWN = "0123456789abcdef0123456789abcdef"


async def _app(database_url: str, valkey_url: str, data_dir: Path, **kwargs: Any) -> Litestar:
    """An app of its own (settings and app are built off the event loop: they touch files)."""
    settings = await asyncio.to_thread(settings_for, database_url, valkey_url, data_dir, **kwargs)
    return await asyncio.to_thread(create_app, settings)


async def test_a_host_naming_no_live_session_is_a_404(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        preview = await session_cookie(client, run_id, origin=upstream.origin)
        for host in (
            f"{UNKNOWN}.preview.localhost",  # session-shaped, not a session
            "not-a-session.preview.localhost",
            f"x.{preview.sid}.preview.localhost",
        ):
            for method, path in (("GET", "/"), ("POST", PREVIEW_SUBSCRIPTION_TOKEN_PATH)):
                response = await client.request(
                    method, path, headers={"host": host, "cookie": preview.cookie}
                )
                assert response.status_code == 404, (host, path, response.text)
        reserved = await client.get("/__terragon/proxy/x", headers=preview.headers())
        assert reserved.status_code == 404
    assert upstream.requests == []


async def test_the_api_host_is_the_api_and_has_no_session_paths(client) -> None:
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id)
    assert (await client.get("/healthz")).status_code == 200
    for method, path in (
        ("GET", f"{PREVIEW_EXCHANGE_PATH}?token=x"),
        ("POST", PREVIEW_SUBSCRIPTION_TOKEN_PATH),
        ("GET", "/__terragon/proxy/"),
    ):
        response = await client.request(method, path, headers={"cookie": preview.cookie})
        assert response.status_code == 404, path
    # ...and the API is not reachable on a session origin: /healthz there is the upstream's.
    on_preview = await client.get("/healthz", headers=preview.headers())
    assert on_preview.status_code == 502  # the upstream (127.0.0.1:9) is down; not the API's 200


async def test_old_path_routes_answer_410_with_the_preview_url_and_set_nothing(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        started = (await start_session(client, run_id, origin=upstream.origin)).json()
        sid = started["previewSessionId"]
        for method, path in (
            ("POST", f"/api/preview/session/{sid}/exchange"),
            ("POST", f"/api/preview/session/{sid}/subscription-token"),
            ("GET", f"/api/preview/proxy/{sid}"),
            ("GET", f"/api/preview/proxy/{sid}/index.html"),
            ("DELETE", f"/api/preview/proxy/{sid}/api/x"),
        ):
            response = await client.request(method, path, json={"token": started["exchangeToken"]})
            assert response.status_code == 410, (path, response.text)
            assert response.json()["previewUrl"] == started["previewUrl"]
            assert "set-cookie" not in response.headers
        odd = await client.get("/api/preview/proxy/NOT-A-SESSION/x")
        assert (odd.status_code, odd.json()["previewUrl"]) == (410, None)
        # The token was not spent there: it still works on the session's origin.
        exchanged = await exchange(client, started["previewUrl"], started["exchangeToken"])
        assert exchanged.status_code == 200
    assert upstream.requests == []


async def test_a_configured_origin_template_routes_and_sets_a_secure_cookie(
    database_url, valkey_url, tmp_path: Path
) -> None:
    app = await _app(
        database_url,
        valkey_url,
        tmp_path,
        preview={"ORIGIN": "https://p-{previewSessionId}.previews.example.test"},
    )
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        run_id = await start_run(client)
        started = (await start_session(client, run_id)).json()
        sid = started["previewSessionId"]
        assert started["previewUrl"] == f"https://p-{sid}.previews.example.test"
        response = await exchange(client, started["previewUrl"], started["exchangeToken"])
        assert response.status_code == 200, response.text
        assert response.headers["set-cookie"].endswith("; HttpOnly; SameSite=Lax; Secure")
        default_host = await client.get("/", headers={"host": f"{sid}.preview.localhost"})
        assert default_host.status_code == 404  # the default namespace is not this deployment's


async def test_private_upstreams_are_refused_unless_the_deployment_allows_them(
    database_url, valkey_url, tmp_path: Path
) -> None:
    strict = await _app(
        database_url, valkey_url, tmp_path, preview={"ALLOW_PRIVATE_UPSTREAM": False}
    )
    async with AsyncTestClient(app=strict) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        run_id = await start_run(client)
        for origin in (
            "http://127.0.0.1:5173",
            "http://localhost:5173",  # a name is resolved, then checked
            "http://[::1]:5173",
            "http://[::ffff:127.0.0.1]:5173",
            "http://169.254.169.254",
            "http://10.0.0.8:3000",
            "http://2130706433",  # 127.0.0.1 spelled as one number
        ):
            response = await start_session(client, run_id, origin=origin)
            assert response.status_code == 403, (origin, response.text)
            assert response.json()["code"] == "proxy_ssrf_blocked", origin
        unresolvable = await start_session(client, run_id, origin="http://nothing.invalid")
        assert unresolvable.status_code == 400
        public = await start_session(client, run_id, origin="http://93.184.216.34")
        assert public.status_code == 200, public.text


async def test_the_address_is_checked_again_at_proxy_time(
    database_url, valkey_url, tmp_path: Path
) -> None:
    """A name that resolved to an allowed address at start may resolve elsewhere later (DNS
    rebinding): every proxied request resolves and checks again, and connects to what it checked.
    Here the session starts where private upstreams are allowed and is served by a replica that
    refuses them: the same proxy-time check a rebound name meets."""
    secret = {"SIGNING_SECRET": "one-secret-for-both-replicas"}
    loose = await _app(database_url, valkey_url, tmp_path, **secret)
    strict = await _app(
        database_url, valkey_url, tmp_path, preview={"ALLOW_PRIVATE_UPSTREAM": False}, **secret
    )
    with Upstream() as upstream:
        async with AsyncTestClient(app=loose) as client:
            client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
            run_id = await start_run(client)
            origin = f"http://localhost:{upstream.port}"
            preview = await session_cookie(client, run_id, origin=origin)
            assert (await client.get("/", headers=preview.headers())).status_code == 201
        upstream.requests.clear()
        async with AsyncTestClient(app=strict) as client:
            response = await client.get("/", headers=preview.headers())
    assert response.status_code == 403
    assert response.json()["code"] == "proxy_ssrf_blocked"
    assert response.headers["x-proxy-req-id"]
    assert upstream.requests == []


async def test_the_schema_documents_the_session_origin_routes(client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    schemathesis.openapi.from_dict(schema).validate()  # the OpenAPI 3.1 meta-schema
    paths = schema["paths"]
    server = {
        "url": "http://{previewSessionId}.preview.localhost:{port}",
        "variables": {"previewSessionId", "port"},
    }
    for path in (PREVIEW_EXCHANGE_PATH, PREVIEW_SUBSCRIPTION_TOKEN_PATH, "/{path}"):
        (documented,) = paths[path]["servers"]
        assert documented["url"] == server["url"], path
        assert set(documented["variables"]) == server["variables"]
        assert all("404" in op["responses"] for m, op in paths[path].items() if m != "servers")
    assert set(paths[PREVIEW_EXCHANGE_PATH]) == {"get", "post", "servers"}
    assert "default" in paths["/{path}"]["get"]["responses"]
    assert "/__terragon/proxy" not in str(paths)  # the internal mount is not an API
    # The old path routes answer 410 to everything (tested above), so they are no operation a
    # client can call: not in the schema (a schema-valid request to them could only fail).
    assert not any(p.startswith("/api/preview/") for p in paths)
    start = paths["/api/internal/preview/session/start"]["post"]["responses"]["200"]
    ref = start["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "previewUrl" in schema["components"]["schemas"][ref]["properties"]
