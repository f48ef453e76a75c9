"""GitHub webhooks over HTTP: signature verification, permission changes visible on the next
request (not after a TTL), fan-out on visibility/team changes, delivery dedupe."""

from __future__ import annotations

import json

import psycopg

from tests.fixtures.preview import post_webhook, start_run, start_session

REPO = {"full_name": "acme/web", "private": True}


def _member(action: str, login: str = "bob-gh") -> dict:
    return {"action": action, "member": {"login": login}, "repository": REPO}


def _membership(action: str, login: str = "bob-gh") -> dict:
    return {
        "action": action,
        "scope": "team",
        "member": {"login": login},
        "team": {"id": 42, "slug": "web"},
        "organization": {"login": "acme"},
    }


async def _link_bob(client) -> str:
    response = await client.put(
        "/api/internal/access/github-accounts/user-2", json={"githubLogin": "bob-gh"}
    )
    assert response.status_code == 200
    return await start_run(client)


async def test_missing_or_wrong_signature_is_401_and_changes_nothing(client, database_url) -> None:
    body = json.dumps(_member("added")).encode()
    for signature in (None, "sha256=" + "0" * 64):
        headers = {"x-github-event": "member", "x-github-delivery": "d-1"}
        if signature:
            headers["x-hub-signature-256"] = signature
        response = await client.post("/api/webhooks/github", content=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "signature_mismatch"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM github_repo_collaborator").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM github_webhook_delivery").fetchone() == (0,)


async def test_collaborator_added_then_removed_is_visible_on_the_next_request(client) -> None:
    run_id = await _link_bob(client)
    denied = await start_session(client, run_id, user_id="user-2")
    assert denied.status_code == 403  # and "denied" is now cached for 5 s
    added = await post_webhook(client, "member", _member("added"))
    assert added.status_code == 200, added.text
    assert added.json() == {"status": "applied", "event": "member", "keysDeleted": 1}
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200
    removed = await post_webhook(client, "member", _member("removed"))
    assert removed.json()["keysDeleted"] == 1  # the 60 s "allowed" entry is gone
    again = await start_session(client, run_id, user_id="user-2")
    assert (again.status_code, again.json()["code"]) == (403, "permission_denied")


async def test_team_membership_and_team_repos_grant_and_revoke(client) -> None:
    run_id = await _link_bob(client)
    team_add = {"team": {"id": 42, "slug": "web"}, "repository": REPO}
    assert (await post_webhook(client, "team_add", team_add)).status_code == 200
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 403
    joined = await post_webhook(client, "membership", _membership("added"))
    assert joined.json()["keysDeleted"] == 1
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200
    removed_repo = {"action": "removed_from_repository", **team_add}
    assert (await post_webhook(client, "team", removed_repo)).json()["keysDeleted"] >= 1
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 403


async def test_publicized_then_privatized_fans_out_but_a_public_repo_grants_nothing(
    client,
) -> None:
    """Visibility changes still drop every cached decision of the repo; a public repo does not
    open its previews to strangers (they show uncommitted sandbox state, CONTRACT §5)."""
    run_id = await start_run(client)
    for user in ("u-a", "u-b"):
        assert (await start_session(client, run_id, user_id=user)).status_code == 403
    public = {"action": "publicized", "repository": {**REPO, "private": False}}
    assert (await post_webhook(client, "repository", public)).json()["keysDeleted"] == 2
    for user in ("u-a", "u-b"):
        denied = await start_session(client, run_id, user_id=user)
        assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")
    assert (await start_session(client, run_id, user_id="user-1")).status_code == 200  # owner
    private = {"action": "privatized", "repository": REPO}
    response = await post_webhook(client, "repository", private)
    assert response.json()["keysDeleted"] == 3


async def test_a_redelivery_is_a_duplicate_and_grants_nothing(client, database_url) -> None:
    """GitHub never sends two bodies under one delivery id: a second body under a recorded id is
    a duplicate too and grants nothing (fail closed), beside the body-digest rule
    (tests/hostile/test_webhook_replay.py; a duplicate that only revokes is applied again)."""
    await _link_bob(client)
    first = await post_webhook(client, "member", _member("removed"), delivery="d-7")
    second = await post_webhook(client, "member", _member("added"), delivery="d-7")
    assert first.json()["status"] == "applied"
    assert second.json()["status"] == "duplicate"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT github_login FROM github_repo_collaborator").fetchall()
    assert rows == []


async def test_a_delivery_whose_apply_fails_records_no_digest(client, database_url: str) -> None:
    """The digest commits with the effect: a body that could not be applied is not remembered."""
    broken = {"action": "added", "repository": REPO}  # no `member`
    response = await post_webhook(client, "member", broken)
    assert response.status_code == 400, response.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM github_webhook_delivery").fetchone() == (0,)


async def test_unknown_events_are_acknowledged_and_ignored(client) -> None:
    response = await post_webhook(client, "ping", {"zen": "Keep it logically awesome."})
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


async def test_a_login_linked_to_another_user_is_a_409_not_a_500(client) -> None:
    first = await client.put(
        "/api/internal/access/github-accounts/u-1", json={"githubLogin": "octo"}
    )
    assert first.status_code == 200
    taken = await client.put(
        "/api/internal/access/github-accounts/u-2", json={"githubLogin": "octo"}
    )
    assert taken.status_code == 409
    assert "octo" in taken.json()["error"]
    relink = await client.put(
        "/api/internal/access/github-accounts/u-1", json={"githubLogin": "octo2"}
    )
    assert relink.status_code == 200
