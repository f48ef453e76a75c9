"""`PUT /api/internal/flags/{name}` and its effect on the next run's frozen snapshot."""

from __future__ import annotations

from tests.fixtures.runs import START_PATH, start_body, thread_body


async def _start(client, request_id: str) -> dict:
    response = await client.post(START_PATH, json=start_body(chat="c", request_id=request_id))
    assert response.status_code == 200, response.text
    return response.json()


async def test_flag_scopes_and_frozen_snapshot(client) -> None:
    await client.post("/api/internal/threads", json=thread_body())
    assert (await _start(client, "a"))["frozenFlags"]["daemonRunIdStrict"] is False
    response = await client.put(
        "/api/internal/flags/daemonRunIdStrict", json={"enabled": True, "repoFullName": "acme/web"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "daemonRunIdStrict",
        "scope": "repo",
        "scopeKey": "acme/web",
        "enabled": True,
    }
    strict = await _start(client, "b")
    assert strict["frozenFlags"] == {
        "sandboxPreview": True,
        "daemonRunIdStrict": True,
        "rolloutPhase": None,
    }
    await client.put(
        "/api/internal/flags/daemonRunIdStrict", json={"enabled": False, "userId": "user-1"}
    )
    run = (await client.get(f"/api/internal/runs/{strict['runId']}")).json()
    assert run["frozenFlags"]["daemonRunIdStrict"] is True  # frozen at creation
    assert (await _start(client, "c"))["frozenFlags"]["daemonRunIdStrict"] is False


async def test_unknown_flag_and_both_scopes_are_rejected(client) -> None:
    assert (await client.put("/api/internal/flags/nope", json={"enabled": True})).status_code == 404
    both = await client.put(
        "/api/internal/flags/sandboxPreview",
        json={"enabled": True, "repoFullName": "a/b", "userId": "u"},
    )
    assert both.status_code == 400
    wrong_type = await client.put("/api/internal/flags/sandboxPreview", json={"enabled": "yes"})
    assert wrong_type.status_code == 400
