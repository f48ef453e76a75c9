"""The preview edge against a stranger (CONTRACT §3 last bullet, §4 offload key, §5 preview).

- An upstream address is judged by the IPv4 address it embeds: IPv4-mapped, IPv4-compatible,
  IPv4-translated, NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4 and Teredo forms of a private,
  loopback or link-local address are 403 `proxy_ssrf_blocked`, literal or from DNS.
- Four cookies planted under the preview cookie's name (another origin can toss them) plus the
  real one: the user still gets the page.
- A cookie-less flood at a session origin writes at most one denial event per session, reason
  and minute, and counts under `user="anonymous"`, never under the session's user.
- On an https session origin the cookie is `__Host-` prefixed, and only that name is read.
- A thread id with `..`, `//`, `%`, unicode or a control character is not part of the offload
  key: an oversized envelope of that thread is offloaded under the hashed `threadKey` and answered
  202, never 503; rows written under the old key format still read back by their stored key.

The hostile cases failed on the code before this change (the forms passed, the planted cookies
pushed the real one out of the four values tried, every denial was a row under the tenant's user,
the cookie had no prefix, and `..` in a thread id made the object store refuse the key: 503); the
public-forms, authenticated-denial and old-key cases are guards that held before and must hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import valkey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from terragon_core import (
    ANONYMOUS_USER,
    PREVIEW_SUBSCRIPTION_TOKEN_PATH,
    MetricName,
    quarantine_thread_key,
)
from terragon_ingest.app import create_app
from terragon_ingest.preview.addresses import UpstreamRefused, checked_addresses, is_public
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.daemon_events import envelope, post, sql
from tests.fixtures.preview import (
    Upstream,
    exchange,
    on_origin,
    session_cookie,
    start_run,
    start_session,
)
from tests.fixtures.runs import start_run as start_daemon_run
from tests.fixtures.settings import settings_for

EMBEDDED_PRIVATE = (
    "[::7f00:1]",  # IPv4-compatible 127.0.0.1
    "[::127.0.0.1]:5173",
    "[::a9fe:a9fe]",  # IPv4-compatible 169.254.169.254 (cloud metadata)
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped
    "[::ffff:0:7f00:1]",  # IPv4-translated (SIIT)
    "[64:ff9b::a9fe:a9fe]",  # NAT64 well-known prefix
    "[64:ff9b::10.0.0.8]:3000",
    "[64:ff9b:1:a00:0:100::]",  # NAT64 local-use /48: 10.0.0.1 at the /48 position
    "[64:ff9b:1::c0a8:101]",  # ... and 192.168.1.1 at the /96 position
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::1]",
    "[2002:c0a8:101:1::1]",  # 6to4 of 192.168.1.1
    "[2001:0:7f00:1::3fff:fdd2]",  # Teredo: server 127.0.0.1
    "[2001:0:4136:e378:8000:63bf:f5ff:fffe]",  # Teredo: client 10.0.0.1 (stored inverted)
)


async def _app(tmp_path: Path, database_url: str, valkey_url: str, **preview: Any) -> Litestar:
    """An app of its own (settings and app are built off the event loop: they touch files)."""
    settings = await asyncio.to_thread(
        settings_for, database_url, valkey_url, tmp_path, preview=preview
    )
    return await asyncio.to_thread(create_app, settings)


@pytest.fixture(name="strict_client")
async def fx_strict_client(database_url: str, valkey_url: str, tmp_path: Path):
    """A client of an app that refuses private upstreams (production's default)."""
    app = await _app(tmp_path, database_url, valkey_url, ALLOW_PRIVATE_UPSTREAM=False)
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        yield client


async def test_ipv4_embedding_ipv6_forms_of_private_addresses_are_refused_at_session_start(
    strict_client,
) -> None:
    run_id = await start_run(strict_client)
    for host in EMBEDDED_PRIVATE:
        response = await start_session(strict_client, run_id, origin=f"http://{host}")
        assert response.status_code == 403, (host, response.text)
        assert response.json()["code"] == "proxy_ssrf_blocked", host
    public = await start_session(strict_client, run_id, origin="http://[64:ff9b::5db8:d822]")
    assert public.status_code == 200, public.text  # NAT64 of 93.184.216.34: judged as that


@pytest.fixture(name="resolver")
def fx_resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DNS answers of our choosing for names under `.test` (the real resolver for the rest)."""
    answers: dict[str, str] = {}
    loop_type = asyncio.BaseEventLoop
    real = loop_type.getaddrinfo

    async def getaddrinfo(self, host, port, *args, **kwargs):
        if host in answers:
            family = socket.AF_INET6 if ":" in answers[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(loop_type, "getaddrinfo", getaddrinfo)
    return answers


async def test_a_dns_answer_in_an_embedding_form_is_judged_by_its_ipv4(
    strict_client, resolver: dict[str, str]
) -> None:
    """The same judgement applies to what a name resolves to, at start and at proxy time
    (both go through `checked_addresses`, which the proxy then connects to)."""
    resolver["rebound.example.test"] = "64:ff9b::7f00:1"
    with pytest.raises(UpstreamRefused):
        await checked_addresses("rebound.example.test", 80, allow_private=False)
    run_id = await start_run(strict_client)
    for answer in ("::ffff:0:a00:1", "2002:a9fe:a9fe::", "::7f00:1"):
        resolver["rebound.example.test"] = answer
        response = await start_session(strict_client, run_id, origin="http://rebound.example.test")
        assert (response.status_code, response.json()["code"]) == (403, "proxy_ssrf_blocked")


def test_public_ipv4_in_an_embedding_form_is_judged_public() -> None:
    for text in ("::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"):
        assert is_public(ipaddress.ip_address(text)), text
    for text in ("::1", "::", "fe80::1", "fc00::1", "2001:db8::1", "ff02::1"):
        assert not is_public(ipaddress.ip_address(text)), text


async def test_four_planted_cookies_and_the_real_one_still_get_the_page(client) -> None:
    with Upstream() as upstream:
        run_id = await start_run(client)
        attacker = await session_cookie(client, run_id, origin=upstream.origin)
        victim = await session_cookie(client, run_id, origin=upstream.origin)
        spare = (await start_session(client, run_id, origin=upstream.origin)).json()
        name, real = victim.cookie.split("=", 1)
        planted = [
            attacker.cookie.split("=", 1)[1],  # a valid cookie of the attacker's own session
            spare["exchangeToken"],  # a token of another audience
            real[:-4] + "AAAA",  # the victim's token with a broken signature
            "junk",
        ]
        cookie = "; ".join([*(f"{name}={value}" for value in planted), victim.cookie])
        response = await client.get("/page", headers=on_origin(victim.url, cookie=cookie))
        assert response.status_code == 201, response.text
        assert [line for line, _ in upstream.requests] == ["GET /page"]


async def test_a_cookieless_flood_writes_one_event_per_session_reason_and_minute(
    client, app, database_url: str
) -> None:
    run_id = await start_run(client)
    started = (await start_session(client, run_id)).json()
    sid, url = started["previewSessionId"], started["previewUrl"]
    flood = 300
    for chunk in range(0, flood, 50):
        requests = [client.get(f"/p{n}", headers=on_origin(url)) for n in range(chunk, chunk + 50)]
        answers = await asyncio.gather(*requests)
        assert {r.status_code for r in answers} == {401}
    cross = {"sec-fetch-site": "same-site", "sec-fetch-mode": "cors", "cookie": "x=1"}
    for _ in range(20):
        response = await client.get("/", headers=on_origin(url, **cross))
        assert (response.status_code, response.json()["code"]) == (403, "binding_mismatch")
    rows = await sql(
        database_url,
        """SELECT properties->>'reason' AS reason, date_trunc('minute', ts_server) AS minute,
                  count(*) AS n, min(user_id) AS user_id
           FROM preview_event WHERE event_name = 'v1.preview.access.denied'
             AND preview_session_id = %s
           GROUP BY 1, 2""",
        [sid],
    )
    assert {r["reason"] for r in rows} == {"signature_mismatch", "binding_mismatch"}
    assert all(r["n"] == 1 for r in rows), rows  # at most one per session, reason and minute
    assert len(rows) <= 4  # two reasons; the flood may straddle one minute boundary
    assert {r["user_id"] for r in rows} == {ANONYMOUS_USER}
    metrics = app.state.preview.metrics
    labels = {"repo": "acme/web", "provider": "manual"}

    def count(user: str, reason: str) -> float:
        return metrics.value(MetricName.ACCESS_DENIED, **labels, user=user, reason=reason)

    assert count(ANONYMOUS_USER, "signature_mismatch") == flood
    assert count(ANONYMOUS_USER, "binding_mismatch") == 20
    assert count("user-1", "signature_mismatch") == count("user-1", "binding_mismatch") == 0


async def test_an_authenticated_users_denial_is_still_recorded_each_time(
    client, database_url: str, valkey_url: str
) -> None:
    """Sampling is for strangers: a user whose valid cookie is refused (here the permission is
    gone) is counted under their own name and every denial is an event."""
    run_id = await start_run(client)
    preview = await session_cookie(client, run_id)
    await sql(database_url, "UPDATE thread SET user_id = 'someone-else'")
    await asyncio.to_thread(_flush, valkey_url)  # the cached "allowed" goes
    for _ in range(3):
        response = await client.post(PREVIEW_SUBSCRIPTION_TOKEN_PATH, headers=preview.headers())
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    rows = await sql(
        database_url,
        """SELECT user_id FROM preview_event WHERE event_name = 'v1.preview.access.denied'
           AND properties->>'reason' = 'permission_denied'""",
    )
    assert [r["user_id"] for r in rows] == ["user-1"] * 3


def _flush(valkey_url: str) -> None:
    server = valkey.from_url(valkey_url)
    server.flushdb()
    server.close()


async def test_an_https_origin_sets_and_reads_only_the_host_prefixed_cookie(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    app = await _app(
        tmp_path,
        database_url,
        valkey_url,
        ORIGIN="https://{previewSessionId}.preview.example.test",
    )
    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        run_id = await start_run(client)
        started = (await start_session(client, run_id)).json()
        response = await exchange(client, started["previewUrl"], started["exchangeToken"])
        assert response.status_code == 200, response.text
        set_cookie = response.headers["set-cookie"]
        pair, *attributes = [part.strip() for part in set_cookie.split(";")]
        name, token = pair.split("=", 1)
        assert name == "__Host-terragon_preview"
        assert {"Path=/", "Secure", "HttpOnly"} <= set(attributes)
        assert not any(a.lower().startswith("domain") for a in attributes)
        url = started["previewUrl"]
        ok = await client.post(
            PREVIEW_SUBSCRIPTION_TOKEN_PATH, headers=on_origin(url, cookie=f"{name}={token}")
        )
        assert ok.status_code == 200, ok.text
        # Without the prefix, a cookie could have been set by any sibling origin: not read.
        unprefixed = await client.post(
            PREVIEW_SUBSCRIPTION_TOKEN_PATH,
            headers=on_origin(url, cookie=f"terragon_preview={token}"),
        )
        assert unprefixed.status_code == 401, unprefixed.text


HOSTILE_THREAD_IDS = (
    "a/../../b",
    "..",
    "x//y/",
    "/abs",
    "100%done%2e%2e%2F",
    "ünïcødé ☃ 线程",
    "ctl\x01\x1b[31mred\x7f",
)


def _expected_prefix(thread_id: str) -> str:
    thread_key = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
    return f"preview/daemon-quarantine/{thread_key}/{datetime.now(UTC).date().isoformat()}/"


async def test_an_oversized_envelope_of_any_thread_id_is_offloaded_under_the_thread_key(
    client, app, database_url: str
) -> None:
    assert quarantine_thread_key("..") == hashlib.sha256(b"..").hexdigest()[:32]
    big = [{"type": "assistant", "text": "x" * 20_000}]
    for thread_id in HOSTILE_THREAD_IDS:
        _, token = await start_daemon_run(client, thread_id=thread_id)
        body = envelope("zombie", 1, thread_id=thread_id, messages=big)
        response = await post(client, body, token)
        assert response.status_code == 202, (thread_id, response.text)
        assert response.json()["reason"] == "mismatch"
    rows = await sql(
        database_url,
        "SELECT thread_id, payload_object_key, payload_hash FROM daemon_event_quarantine",
    )
    assert {r["thread_id"] for r in rows} == set(HOSTILE_THREAD_IDS)
    for row in rows:
        key = row["payload_object_key"]
        prefix = _expected_prefix(row["thread_id"])
        assert key.startswith(prefix) and key.endswith(".json"), (row["thread_id"], key)
        uuid.UUID(key.removeprefix(prefix).removesuffix(".json"))
        stored = await app.state.daemon_events.objects.get(key)
        assert stored is not None and hashlib.sha256(stored).hexdigest() == row["payload_hash"]


async def test_a_row_written_under_the_old_key_format_still_reads_by_its_stored_key(
    client, app, cli, database_url: str
) -> None:
    """Existing objects keep their pointers: reads use the row's key, never a rebuilt one."""
    _, token = await start_daemon_run(client)
    body = envelope("zombie", 1, messages=[{"type": "assistant", "text": "é" * 9000}])
    response = await post(client, body, token)
    quarantine_id = response.json()["quarantineId"]
    [row] = await sql(database_url, "SELECT payload_object_key FROM daemon_event_quarantine")
    objects = app.state.daemon_events.objects
    old_key = f"preview/daemon-quarantine/thread-1/2026-01-02/{uuid.uuid4()}.json"
    stored = await objects.get(row["payload_object_key"])
    assert stored is not None
    await objects.put(old_key, stored)
    await objects.delete(row["payload_object_key"])
    await sql(database_url, "UPDATE daemon_event_quarantine SET payload_object_key = %s", [old_key])
    payload = json.loads(await cli("quarantine", "show", quarantine_id, "--payload"))
    assert payload["seq"] == 1 and payload["messages"][0]["text"] == "é" * 9000
