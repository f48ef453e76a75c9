"""Preview sessions over HTTP: start bound to the active run (with `previewUrl`), the exchange on
the session's origin (GET with redirect, POST), the cookie exactly as CONTRACT §5 sets it, the
subscription token, remint and revoke, and the denial event + counter every refusal leaves."""

from __future__ import annotations

import jwt
import psycopg

from terragon_core import (
    PREVIEW_EXCHANGE_PATH,
    PREVIEW_SUBSCRIPTION_TOKEN_PATH,
    MetricName,
    PreviewTokenAudience,
)
from tests.fixtures.preview import (
    exchange,
    on_origin,
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
    assert set(body) == {"previewSessionId", "exchangeToken", "expiresAt", "previewUrl"}
    # The test client's server is testserver.local:80, so the default origin has no port.
    assert body["previewUrl"] == f"http://{body['previewSessionId']}.preview.localhost"
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
    metrics = app.state.preview.metrics
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
    bad = ("ftp://h", "http://u:p@h", "http://h/path", "http://h?q=1", "h:80", "http://h:99999")
    for origin in (*bad, "http://h:0", "http://ex ample.com", "http://%31%32%37.0.0.1"):
        response = await start_session(client, run_id, origin=origin)
        assert response.status_code == 400, (origin, response.text)
        # Named either by the schema's constraint (`detail`) or by the service's own check.
        assert "upstreamOrigin" in response.text, (origin, response.text)


async def test_exchange_sets_the_preview_cookie_exactly(client) -> None:
    run_id = await start_run(client)
    started = (await start_session(client, run_id)).json()
    response = await exchange(client, started["previewUrl"], started["exchangeToken"])
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"expiresAt"}
    assert response.headers["cache-control"] == "no-store"
    assert len(response.headers.get_list("set-cookie")) == 1
    cookie = response.headers["set-cookie"]
    attributes = [a.strip() for a in cookie.split(";")]
    # Host-only (no Domain), Path=/, HttpOnly, SameSite=Lax, 30 min; http origin → no Secure.
    assert attributes[1:] == ["Max-Age=1800", "Path=/", "HttpOnly", "SameSite=Lax"]
    token = attributes[0].split("=", 1)[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == PreviewTokenAudience.COOKIE.value
    assert claims["sid"] == started["previewSessionId"]


async def test_exchange_by_get_redirects_to_the_root_with_the_cookie(client) -> None:
    run_id = await start_run(client)
    started = (await start_session(client, run_id)).json()
    response = await client.get(
        PREVIEW_EXCHANGE_PATH,
        params={"token": started["exchangeToken"]},
        headers=on_origin(
            started["previewUrl"], **{"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
        ),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["set-cookie"].endswith("; Max-Age=1800; Path=/; HttpOnly; SameSite=Lax")
    assert response.content == b""
    replay = await client.get(
        PREVIEW_EXCHANGE_PATH,
        params={"token": started["exchangeToken"]},
        headers=on_origin(started["previewUrl"]),
        follow_redirects=False,
    )
    assert (replay.status_code, replay.json()["code"]) == (409, "token_replay")
    assert "set-cookie" not in replay.headers


async def test_subscription_token_needs_the_cookie_and_lives_60_seconds(client) -> None:
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id)
    path = PREVIEW_SUBSCRIPTION_TOKEN_PATH
    denied = await client.post(path, headers=on_origin(preview.url))
    assert (denied.status_code, denied.json()["code"]) == (401, "signature_mismatch")
    response = await client.post(path, headers=preview.headers())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["aud"] == PreviewTokenAudience.BROADCAST.value
    assert claims["sid"] == preview.sid
    assert claims["exp"] - claims["iat"] == 60


async def test_a_cookie_of_session_a_on_session_b_origin_is_401(client, database_url) -> None:
    run_id = await start_run(client)
    a = await session_cookie(client, run_id)
    b = await session_cookie(client, run_id)
    response = await client.post(
        PREVIEW_SUBSCRIPTION_TOKEN_PATH, headers=on_origin(b.url, cookie=a.cookie)
    )
    assert (response.status_code, response.json()["code"]) == (401, "signature_mismatch")
    assert response.json()["error"] == "token belongs to another preview session"
    assert _denials(database_url)[-1] == ("preview_subscription", "signature_mismatch", b.sid)


async def test_a_planted_same_name_cookie_does_not_lock_the_user_out(client) -> None:
    """A sibling origin's page can toss `terragon_preview=junk; Domain=<parent>`; the browser
    then sends both values. The one that verifies for this session wins."""
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id)
    planted = f"terragon_preview=junk; {preview.cookie}"
    response = await client.post(
        PREVIEW_SUBSCRIPTION_TOKEN_PATH, headers=on_origin(preview.url, cookie=planted)
    )
    assert response.status_code == 200, response.text


async def test_revoke_stops_the_cookie_and_remint_replaces_it(client, database_url) -> None:
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id)
    path = PREVIEW_SUBSCRIPTION_TOKEN_PATH
    reminted = await client.post(f"/api/internal/preview/session/{preview.sid}/remint")
    assert reminted.status_code == 200, reminted.text
    assert reminted.json()["previewUrl"] == preview.url
    stale = await client.post(path, headers=preview.headers())
    assert (stale.status_code, stale.json()["code"]) == (401, "revoked")
    fresh = await exchange(client, preview.url, reminted.json()["exchangeToken"])
    new_cookie = fresh.headers["set-cookie"].split(";", 1)[0]
    fresh_headers = on_origin(preview.url, cookie=new_cookie)
    assert (await client.post(path, headers=fresh_headers)).status_code == 200
    revoked = await client.post(f"/api/internal/preview/session/{preview.sid}/revoke")
    assert revoked.status_code == 200
    # A revoked session is no longer live: its origin answers 404 (CONTRACT §5).
    after = await client.post(path, headers=fresh_headers)
    assert after.status_code == 404, after.text
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
