"""Exchange-token rejections over HTTP, each with its `SecurityReason` and core's status:
wrong aud, wrong kid, expired, future iat beyond the skew, replayed jti, replayed nonce,
claims bound to another session (worthless on this session's origin: 401). Tokens are forged
with the app's own keys and presented on the session's own origin."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest

from terragon_core import PreviewTokenAudience, SecurityReason, http_status_for
from tests.fixtures.preview import exchange, start_run, start_session


def _forge(app, claims: dict[str, Any], *, aud: PreviewTokenAudience, kid: str = "k1") -> str:
    keyring = app.state.preview.keyring
    key = keyring.key(aud, "k1")  # a known secret; `kid` in the header may lie
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": kid})


async def _session(client) -> tuple[str, dict[str, Any]]:
    """`(previewUrl, claims of its exchange token)`."""
    run_id = await start_run(client)
    body = (await start_session(client, run_id)).json()
    claims = jwt.decode(body["exchangeToken"], options={"verify_signature": False})
    return body["previewUrl"], claims


def _fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {**claims, "iat": now, "exp": now + 120, "jti": secrets.token_hex(8)}
    base["nonce"] = secrets.token_hex(8)
    base.update(changes)
    return base


async def _assert_denied(response, reason: SecurityReason) -> None:
    assert response.status_code == http_status_for(reason), response.text
    assert response.json()["code"] == reason.value
    assert "set-cookie" not in response.headers


async def test_a_forged_but_valid_token_is_accepted(client, app) -> None:
    url, claims = await _session(client)
    token = _forge(app, _fresh(claims), aud=PreviewTokenAudience.EXCHANGE)
    assert (await exchange(client, url, token)).status_code == 200  # the forge itself is right


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_aud", SecurityReason.SIGNATURE_MISMATCH),
        ("wrong_aud_key", SecurityReason.SIGNATURE_MISMATCH),
        ("wrong_kid", SecurityReason.SIGNATURE_MISMATCH),
        ("expired", SecurityReason.EXPIRED),
        ("future_iat", SecurityReason.SIGNATURE_MISMATCH),
        ("too_long", SecurityReason.SIGNATURE_MISMATCH),
        ("other_session", SecurityReason.SIGNATURE_MISMATCH),  # valid only on its own origin
        ("other_user", SecurityReason.BINDING_MISMATCH),
        ("old_revocation_version", SecurityReason.REVOKED),
    ],
)
async def test_bad_exchange_tokens_are_rejected(client, app, case: str, reason) -> None:
    url, claims = await _session(client)
    now = int(time.time())
    aud = PreviewTokenAudience.EXCHANGE
    kid = "k1"
    if case == "wrong_aud":
        forged = _fresh(claims, aud=PreviewTokenAudience.COOKIE.value)
    elif case == "wrong_aud_key":
        forged, aud = _fresh(claims), PreviewTokenAudience.COOKIE
    elif case == "wrong_kid":
        forged, kid = _fresh(claims), "k0"
    elif case == "expired":
        forged = _fresh(claims, iat=now - 400, exp=now - 61)  # past the 60 s leeway
    elif case == "future_iat":
        forged = _fresh(claims, iat=now + 61 + 5, exp=now + 200)
    elif case == "too_long":
        forged = _fresh(claims, exp=now + 301)
    elif case == "other_session":
        forged = _fresh(claims, sid="someone-elses-session")
    elif case == "other_user":
        forged = _fresh(claims, sub="user-2")
    else:
        forged = _fresh(claims, rv=claims["rv"] - 1)
    response = await exchange(client, url, _forge(app, forged, aud=aud, kid=kid))
    await _assert_denied(response, reason)


async def test_a_replayed_jti_is_token_replay(client) -> None:
    run_id = await start_run(client)
    body = (await start_session(client, run_id)).json()
    url, token = body["previewUrl"], body["exchangeToken"]
    assert (await exchange(client, url, token)).status_code == 200
    await _assert_denied(await exchange(client, url, token), SecurityReason.TOKEN_REPLAY)


async def test_a_replayed_nonce_is_token_replay(client, app) -> None:
    url, claims = await _session(client)
    first = _fresh(claims)
    aud = PreviewTokenAudience.EXCHANGE
    assert (await exchange(client, url, _forge(app, first, aud=aud))).status_code == 200
    second = _fresh(claims, nonce=first["nonce"])  # new jti, same nonce
    assert second["jti"] != first["jti"]
    response = await exchange(client, url, _forge(app, second, aud=aud))
    await _assert_denied(response, SecurityReason.TOKEN_REPLAY)
    assert "nonce" in response.json()["error"]


async def test_a_token_of_another_session_is_worthless_on_this_origin(client) -> None:
    run_id = await start_run(client)
    first = (await start_session(client, run_id)).json()
    second = (await start_session(client, run_id)).json()
    response = await exchange(client, second["previewUrl"], first["exchangeToken"])
    await _assert_denied(response, SecurityReason.SIGNATURE_MISMATCH)
    assert response.json()["error"] == "token belongs to another preview session"
    # ...and it was not spent: on its own origin it still works.
    assert (await exchange(client, first["previewUrl"], first["exchangeToken"])).status_code == 200
