"""GitHub names are case-insensitive, and cache-key components cannot bleed into each other
(CONTRACT §5). Before this, a collaborator added for `Acme/Web` and removed by a webhook naming
`acme/web` (a case-only rename keeps the repository) stayed allowed, also after the TTL; and
`repo_access_key("dev", "x:y", "r/s") == repo_access_key("dev", "x", "y:r/s")`, so the cached
decision of one (user, repo) pair answered for another."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import psycopg
import pytest
import valkey.asyncio as valkey_asyncio

from terragon_core import (
    fold_github_name,
    repo_access_generation_key,
    repo_access_index_key,
    repo_access_key,
    repo_access_lock_key,
)
from tests.fixtures.preview import post_webhook, start_run, start_session


@pytest.fixture(name="raw_valkey")
async def fx_raw_valkey(valkey_url: str) -> AsyncIterator[valkey_asyncio.Valkey]:
    client = valkey_asyncio.from_url(valkey_url)
    yield client
    await client.aclose()


async def _cold(raw_valkey: valkey_asyncio.Valkey) -> None:
    """Every cached decision gone: what the TTL does, without waiting for it."""
    await raw_valkey.flushdb()


async def _link(client, user_id: str, login: str) -> None:
    response = await client.put(
        f"/api/internal/access/github-accounts/{user_id}", json={"githubLogin": login}
    )
    assert response.status_code == 200, response.text


def _code(response) -> tuple[int, str | None]:
    body = response.json()
    return response.status_code, body.get("code") if response.status_code != 200 else None


def _member(action: str, repo: str, login: str) -> dict:
    return {
        "action": action,
        "member": {"login": login},
        "repository": {"full_name": repo, "private": True},
    }


# ---------------------------------------------------------------- collaborators


@pytest.mark.parametrize(
    ("added_as", "removed_as"),
    [
        (("Acme/Web", "bob-gh"), ("acme/web", "bob-gh")),
        (("acme/web", "bob-gh"), ("ACME/WEB", "Bob-GH")),
        (("Acme/Web", "Bob-GH"), ("acme/web", "bob-gh")),
    ],
)
async def test_a_case_only_rename_removal_denies_warm_and_cold(
    client, raw_valkey, added_as: tuple[str, str], removed_as: tuple[str, str]
) -> None:
    run_id = await start_run(client, repoFullName="Acme/Web")
    await _link(client, "user-2", "bob-gh")
    added = await post_webhook(client, "member", _member("added", *added_as))
    assert added.json()["status"] == "applied", added.text
    allowed = await start_session(client, run_id, user_id="user-2")
    assert allowed.status_code == 200, allowed.text  # "allowed" is now cached for 60 s
    removed = await post_webhook(client, "member", _member("removed", *removed_as))
    assert removed.json()["status"] == "applied", removed.text
    assert removed.json()["keysDeleted"] == 1  # the cached "allowed" of Acme/Web is gone
    warm = await start_session(client, run_id, user_id="user-2")
    assert _code(warm) == (403, "permission_denied")
    await _cold(raw_valkey)
    cold = await start_session(client, run_id, user_id="user-2")
    assert _code(cold) == (403, "permission_denied")


async def test_permission_rows_are_stored_folded(client, database_url: str) -> None:
    await post_webhook(client, "member", _member("added", "Acme/Web", "Bob-GH"))
    await post_webhook(client, "member", _member("added", "ACME/web", "BOB-gh"))
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT repo_full_name, github_login FROM github_repo_collaborator"
        ).fetchall()
    assert rows == [("acme/web", "bob-gh")]


# ---------------------------------------------------------------- teams


async def test_a_team_repo_removed_under_another_case_denies(client, raw_valkey) -> None:
    run_id = await start_run(client, repoFullName="Acme/Web")
    await _link(client, "user-2", "Bob-GH")
    team = {"team": {"id": 42, "slug": "web"}, "organization": {"login": "acme"}}
    added = {**team, "repository": {"full_name": "Acme/Web", "private": True}}
    assert (await post_webhook(client, "team_add", added)).json()["status"] == "applied"
    joined = {"action": "added", "scope": "team", "member": {"login": "BOB-gh"}, **team}
    assert (await post_webhook(client, "membership", joined)).json()["status"] == "applied"
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200
    removed = {
        "action": "removed_from_repository",
        **team,
        "repository": {"full_name": "acme/WEB", "private": True},
    }
    answer = await post_webhook(client, "team", removed)
    assert answer.json()["keysDeleted"] >= 1, answer.text
    assert _code(await start_session(client, run_id, user_id="user-2")) == (
        403,
        "permission_denied",
    )
    await _cold(raw_valkey)
    assert _code(await start_session(client, run_id, user_id="user-2")) == (
        403,
        "permission_denied",
    )


async def test_a_team_member_removed_under_another_case_denies(client, raw_valkey) -> None:
    run_id = await start_run(client, repoFullName="acme/web")
    await _link(client, "user-2", "bob-gh")
    team = {"team": {"id": 7, "slug": "web"}, "organization": {"login": "acme"}}
    await post_webhook(client, "team_add", {**team, "repository": {"full_name": "ACME/Web"}})
    joined = {"action": "added", "scope": "team", "member": {"login": "Bob-GH"}, **team}
    await post_webhook(client, "membership", joined)
    assert (await start_session(client, run_id, user_id="user-2")).status_code == 200
    left = {"action": "removed", "scope": "team", "member": {"login": "BOB-GH"}, **team}
    assert (await post_webhook(client, "membership", left)).json()["keysDeleted"] == 1
    await _cold(raw_valkey)
    assert _code(await start_session(client, run_id, user_id="user-2")) == (
        403,
        "permission_denied",
    )


# ---------------------------------------------------------------- the owner check


async def test_the_decision_does_not_depend_on_which_casing_filled_the_cache(
    client, raw_valkey
) -> None:
    """Both casings share one key, so the permission check must answer both alike: user-2 owns
    a thread on `acme/web`, which is the repository of user-1's thread `Acme/Web`."""
    run_id = await start_run(client, "thread-1", repoFullName="Acme/Web")
    await start_run(client, "thread-2", userId="user-2", repoFullName="acme/web")
    first = await start_session(client, run_id, user_id="user-2", thread_id="thread-1")
    await _cold(raw_valkey)
    again = await start_session(client, run_id, user_id="user-2", thread_id="thread-1")
    assert first.status_code == again.status_code == 200, (first.text, again.text)


# ---------------------------------------------------------------- keys


def test_the_issue_collision_is_gone() -> None:
    assert repo_access_key("dev", "x:y", "r/s") != repo_access_key("dev", "x", "y:r/s")
    assert repo_access_lock_key("dev", "x:y", "r/s") != repo_access_lock_key("dev", "x", "y:r/s")


def test_distinct_pairs_never_share_a_key() -> None:
    parts = ["", "a", ":", "a:b", "%", "%3A", "%3a", "%25", "a%3Ab", "Acme/Web", "b:"]
    seen: dict[str, tuple[str, str, str]] = {}
    for env, user, repo in itertools.product(["dev", "d:e", "d%3Ae"], parts, parts):
        triple = (env, user, fold_github_name(repo))
        for make in (repo_access_key, repo_access_lock_key):
            key = make(env, user, repo)
            assert seen.setdefault(f"{make.__name__}|{key}", triple) == triple, key
        for make in (repo_access_index_key, repo_access_generation_key):
            key = make(env, repo)
            pair = (env, "", fold_github_name(repo))
            assert seen.setdefault(f"{make.__name__}|{key}", pair) == pair, key


def test_keys_fold_the_repo_only_and_escape_every_component() -> None:
    assert repo_access_key("dev", "u-1", "Acme/Web") == repo_access_key("dev", "u-1", "acme/web")
    assert repo_access_key("dev", "U-1", "acme/web") != repo_access_key("dev", "u-1", "acme/web")
    assert repo_access_key("d:v", "u%1", "a:b/c%d") == (
        "terragon:v1:preview:repo-access:d%3Av:u%251:a%3Ab/c%25d"
    )
    assert repo_access_index_key("dev", "Acme/Web") == repo_access_index_key("dev", "acme/web")
    assert repo_access_generation_key("dev", "A:B") == repo_access_generation_key("dev", "a:b")


def test_the_fold_is_ascii_only() -> None:
    """GitHub names are ASCII; folding other letters could make two names one key while the
    permission check (PostgreSQL's `lower(x COLLATE "C")`, ASCII only) keeps them apart."""
    assert fold_github_name("Acme/Web-1_A.b") == "acme/web-1_a.b"
    assert fold_github_name("\u212a/\u0130") == "\u212a/\u0130"  # Kelvin sign, dotted I


async def test_a_user_id_with_a_colon_does_not_read_another_pairs_decision(client) -> None:
    """`x` owns a thread on `y:r/s` (cached "allowed"); `x:y` asks about `r/s`."""
    owned = await start_run(client, "thread-1", userId="x", repoFullName="y:r/s")
    assert (
        await start_session(client, owned, user_id="x", thread_id="thread-1")
    ).status_code == 200
    other = await start_run(client, "thread-2", userId="owner", repoFullName="r/s")
    stranger = await start_session(client, other, user_id="x:y", thread_id="thread-2")
    assert _code(stranger) == (403, "permission_denied")


async def test_python_and_sql_fold_alike(database_url: str) -> None:
    samples = ["Acme/Web", "ÄÖÜ/é", "\u212a", "\u0130stanbul", "ß/SS", "a:B%C", "ǅ", "Ω/ω"]
    with psycopg.connect(database_url) as conn:
        for text in samples:
            row = conn.execute('SELECT lower(%s::text COLLATE "C")', (text,)).fetchone()
            assert row is not None
            assert row[0] == fold_github_name(text), text
