"""A replayed webhook must not restore removed access (CONTRACT §5). GitHub signs the body, not
`X-GitHub-Delivery`: before this, a captured `member` "added" delivery replayed after "removed"
with a new delivery id was answered `applied`, and the user was allowed again. Deliveries are now
idempotent by the body's sha256 for 30 days, and retention purges older digests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from pathlib import Path

import psycopg
import pytest

from terragon_core import CACHE_INVALIDATION_EVENT
from terragon_ingest.archive import repository as archive_repository
from terragon_ingest.archive.retention import purge
from terragon_ingest.telemetry import Metrics
from tests.fixtures.preview import post_webhook, start_run, start_session

REPO = {"full_name": "acme/web", "private": True}


def _member(action: str, login: str = "bob-gh") -> dict:
    return {"action": action, "member": {"login": login}, "repository": REPO}


async def _bob(client) -> str:
    response = await client.put(
        "/api/internal/access/github-accounts/user-2", json={"githubLogin": "bob-gh"}
    )
    assert response.status_code == 200, response.text
    return await start_run(client)


def _collaborators(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT repo_full_name, github_login FROM github_repo_collaborator"
        ).fetchall()


async def test_a_replayed_grant_with_a_new_delivery_id_is_a_duplicate(
    client, database_url: str
) -> None:
    run_id = await _bob(client)
    added = await post_webhook(client, "member", _member("added"), delivery="d-added")
    assert added.json()["status"] == "applied"
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200
    removed = await post_webhook(client, "member", _member("removed"), delivery="d-removed")
    assert removed.json()["status"] == "applied"

    replay = await post_webhook(client, "member", _member("added"), delivery="d-forged")
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"status": "duplicate", "event": "member", "keysDeleted": 0}
    assert _collaborators(database_url) == []
    denied = await start_session(client, run_id, user_id="user-2")
    assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")


async def test_a_repeated_removal_still_revokes_and_the_platform_re_grants(
    client, database_url: str
) -> None:
    """Failing closed cuts both ways. A collaborator removed, re-added and removed again may be
    sent the first removal's exact bytes (nothing in the payload dates the change): that removal
    is applied again (answered `duplicate`), never ignored into "allowed". A replayed removal
    therefore revokes too; the platform restores a grant through the internal API, which no
    replayed body can do."""
    run_id = await _bob(client)
    await post_webhook(client, "member", _member("added"))
    await post_webhook(client, "member", _member("removed"))
    regrant = {**_member("added"), "sender": {"login": "admin"}}  # a new body, genuinely signed
    assert (await post_webhook(client, "member", regrant)).json()["status"] == "applied"
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200

    again = await post_webhook(client, "member", _member("removed"))
    assert again.json() == {"status": "duplicate", "event": "member", "keysDeleted": 1}
    assert _collaborators(database_url) == []
    denied = await start_session(client, run_id, user_id="user-2")
    assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")

    replayed_grant = await post_webhook(client, "member", regrant)
    assert replayed_grant.json()["status"] == "duplicate"
    assert _collaborators(database_url) == []

    granted = await client.put(
        "/api/internal/access/collaborators",
        json={"repoFullName": "ACME/Web", "githubLogin": "Bob-GH"},
    )
    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "repoFullName": "ACME/Web",
        "githubLogin": "Bob-GH",
        "keysDeleted": 1,  # the cached denial
    }
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200


async def test_replaying_a_removal_in_force_writes_nothing(client, database_url: str) -> None:
    """A captured removal replayed over and over, while the access is already gone, deletes
    nothing, invalidates nothing and records no event: a replay costs no rows."""
    await _bob(client)
    await post_webhook(client, "member", _member("added"))
    await post_webhook(client, "member", _member("removed"))

    def invalidation_events() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM preview_event WHERE event_name = %s",
                (CACHE_INVALIDATION_EVENT,),
            ).fetchone()
        return int(row[0]) if row else 0

    before = invalidation_events()
    assert before > 0
    for _ in range(5):
        replay = await post_webhook(client, "member", _member("removed"))
        assert replay.json() == {"status": "duplicate", "event": "member", "keysDeleted": 0}
    assert invalidation_events() == before


async def test_the_internal_grant_refuses_what_is_not_a_name(client) -> None:
    for body in (
        {"repoFullName": "", "githubLogin": "bob"},
        {"repoFullName": "acme/web", "githubLogin": "b" * 257},
        {"repoFullName": "acme/web\u0000", "githubLogin": "bob"},
        {"repoFullName": "acme/web", "githubLogin": "bob", "admin": True},
    ):
        response = await client.put("/api/internal/access/collaborators", json=body)
        assert response.status_code == 400, (body, response.text)


async def test_concurrent_copies_of_one_body_apply_once(client, database_url: str) -> None:
    await _bob(client)
    answers = await asyncio.gather(
        *(post_webhook(client, "member", _member("added")) for _ in range(6))
    )
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["applied"] + ["duplicate"] * 5, [a.text for a in answers]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM github_webhook_delivery").fetchone()
    assert rows == (1,)


async def test_the_digest_is_what_is_recorded(client, database_url: str) -> None:
    payload = _member("added")
    await post_webhook(client, "member", payload, delivery="d-1")
    body = json.dumps(payload).encode()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT body_sha256, delivery_id FROM github_webhook_delivery"
        ).fetchall()
    assert rows == [(hashlib.sha256(body).digest(), "d-1")]


@pytest.mark.parametrize("age_days", [31, 45])
async def test_retention_purges_digests_older_than_30_days(
    client, database_url: str, tmp_path: Path, age_days: int
) -> None:
    await _bob(client)
    old, recent = _member("added", "old-gh"), _member("added", "recent-gh")
    await post_webhook(client, "member", old)
    await post_webhook(client, "member", recent)
    old_digest = hashlib.sha256(json.dumps(old).encode()).digest()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE github_webhook_delivery SET received_at = now() - make_interval(days => %s) "
            "WHERE body_sha256 = %s",
            (age_days, old_digest),
        )
        conn.execute(  # 29 days: kept
            "UPDATE github_webhook_delivery SET received_at = now() - interval '29 days' "
            "WHERE body_sha256 <> %s",
            (old_digest,),
        )

    conn = await archive_repository.async_connect(database_url)
    async with conn:
        plans = await purge(conn, archive_root=tmp_path / "archive", store=None, metrics=Metrics())
    assert [(p.dataset, p.rows, p.purged) for p in plans] == [("github_webhook_delivery", 1, True)]

    with psycopg.connect(database_url) as conn:
        left = conn.execute("SELECT body_sha256 FROM github_webhook_delivery").fetchall()
    assert len(left) == 1 and left[0][0] != old_digest
    assert (await post_webhook(client, "member", recent)).json()["status"] == "duplicate"


@pytest.mark.parametrize(
    ("payload", "delivery"),
    [
        (_member("added"), secrets.token_urlsafe(4000)),  # refused before any SQL
        (
            {
                "action": "added",
                "scope": "team",
                "member": {"login": "x"},
                "team": {"id": 1},
                "organization": "acme",
            },
            None,
        ),  # `organization` not an object: was a 500
    ],
)
async def test_signed_but_malformed_deliveries_are_400_and_record_nothing(
    client, database_url: str, payload: dict, delivery: str | None
) -> None:
    event = "member" if "repository" in payload else "membership"
    response = await post_webhook(client, event, payload, delivery=delivery)
    assert response.status_code == 400, response.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM github_webhook_delivery").fetchone() == (0,)
