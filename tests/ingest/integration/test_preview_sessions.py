"""Preview sessions over HTTP: start bound to the active run, exchange, cookie, subscription
token, remint and revoke, and the denial event + counter every refusal leaves behind."""

from __future__ import annotations

import jwt
import psycopg

from terragon_core import MetricName, PreviewTokenAudience
from tests.ingest.integration.test_preview_support import (
    exchange,
    session_cookie,
    start_run,
    start_session,
)


def _denials(database_url: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT origin, properties->>'reason', preview_session_id FROM preview_event "
            "WHERE event_name = 'v1.preview.access.denied' ORDER BY ts_server"
        ).fetchall()
    return [(str(r[0]), str(r[1]), r[2]) for r in rows]


async def test_start_returns_an_exchange_token_bound_to_the_session(client, app) -> None:
    run_id = await start_run(client)
    response = await start_session(client, run_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"previewSessionId", "exchangeToken", "expiresAt"}
    header = jwt.get_unverified_header(body["exchangeToken"])
    claims = jwt.decode(body["exchangeToken"], options={"verify_signature": False})
    assert header["kid"] == "k1"
    assert claims["aud"] == PreviewTokenAudience.EXCHANGE.value
    assert claims["iss"] == "terragon-preview"
    assert claims["sid"] == body["previewSessionId"]
    assert claims["sub"] == "user-1"
    assert claims["exp"] - claims["iat"] <= 300
    assert {"jti", "nonce", "rv"} <= set(claims)


async def test_start_for_a_run_that_is_not_active_is_binding_mismatch(
    client, app, database_url
) -> None:
    old_run = await start_run(client)
    await start_run(client)  # supersedes old_run
    response = await start_session(client, old_run)
    assert response.status_code == 403
    assert response.json()["code"] == "binding_mismatch"
    assert _denials(database_url) == [("preview_session_start", "binding_mismatch", None)]
    metrics = app.state.services.metrics
    assert (
        metrics.value(
            MetricName.ACCESS_DENIED,
            repo="acme/web",
            user="user-1",
            provider="manual",
            reason="binding_mismatch",
        )
        == 1
    )


async def test_start_with_frozen_sandbox_preview_off_is_permission_denied(client) -> None:
    flag = await client.put("/api/internal/flags/sandboxPreview", json={"enabled": False})
    assert flag.status_code == 200
    run_id = await start_run(client)
    await client.put("/api/internal/flags/sandboxPreview", json={"enabled": True})
    response = await start_session(client, run_id)  # the run keeps its frozen `false`
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "sandboxPreview" in response.json()["error"]


async def test_start_for_a_user_without_access_is_permission_denied(client) -> None:
    run_id = await start_run(client)
    response = await start_session(client, run_id, user_id="stranger")
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "error": "user 'stranger' may not see previews of 'acme/web'",
    }


async def test_upstream_origin_must_be_a_bare_origin(client) -> None:
    run_id = await start_run(client)
    for bad in ("ftp://h", "http://u:p@h", "http://h/path", "http://h?q=1", "h:80"):
        response = await start_session(client, run_id, origin=bad)
        assert response.status_code == 400, bad


async def test_exchange_sets_the_preview_cookie(client) -> None:
    run_id = await start_run(client)
    started = (await start_session(client, run_id)).json()
    sid = started["previewSessionId"]
    response = await exchange(client, sid, started["exchangeToken"])
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    attributes = [a.strip() for a in cookie.split(";")]
    assert attributes[1:] == [
        "Max-Age=1800",
        f"Path=/api/preview/proxy/{sid}",
        "Secure",
        "HttpOnly",
    ]
    assert "domain" not in cookie.lower()
    token = attributes[0].split("=", 1)[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == PreviewTokenAudience.COOKIE.value
    assert claims["sid"] == sid


async def test_subscription_token_needs_the_cookie_and_lives_60_seconds(client) -> None:
    run_id = await start_run(client)
    sid, cookie = await session_cookie(client, run_id)
    path = f"/api/preview/session/{sid}/subscription-token"
    assert (await client.post(path)).status_code == 401
    response = await client.post(path, headers={"cookie": cookie})
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["aud"] == PreviewTokenAudience.BROADCAST.value
    assert claims["exp"] - claims["iat"] == 60


async def test_revoke_stops_the_cookie_and_remint_replaces_it(client, database_url) -> None:
    run_id = await start_run(client)
    sid, cookie = await session_cookie(client, run_id)
    path = f"/api/preview/session/{sid}/subscription-token"
    reminted = await client.post(f"/api/internal/preview/session/{sid}/remint")
    assert reminted.status_code == 200, reminted.text
    stale = await client.post(path, headers={"cookie": cookie})
    assert (stale.status_code, stale.json()["code"]) == (401, "revoked")
    fresh = await exchange(client, sid, reminted.json()["exchangeToken"])
    new_cookie = fresh.headers["set-cookie"].split(";", 1)[0]
    assert (await client.post(path, headers={"cookie": new_cookie})).status_code == 200
    revoked = await client.post(f"/api/internal/preview/session/{sid}/revoke")
    assert revoked.status_code == 200
    after = await client.post(path, headers={"cookie": new_cookie})
    assert (after.status_code, after.json()["code"]) == (401, "revoked")
    with psycopg.connect(database_url) as conn:
        reasons = [
            r[0]
            for r in conn.execute(
                "SELECT properties->>'reason' FROM preview_event "
                "WHERE event_name = 'preview.cache.invalidation' "
                "AND properties->>'reason' LIKE 'session%%' ORDER BY ts_server"
            )
        ]
    assert reasons == ["session_remint", "session_revoked"]
