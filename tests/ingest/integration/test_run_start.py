"""`POST /api/internal/runs/start` (startAgentMessage) over HTTP with the manual provider."""

from __future__ import annotations

from tests.support import thread_body


async def _start(client, request_id: str = "req-1", chat: str = "chat-1"):
    return await client.post(
        "/api/internal/runs/start",
        json={
            "threadId": "thread-1",
            "threadChatId": chat,
            "startRequestId": request_id,
            "triggerSource": "ui",
        },
    )


async def test_manual_run_start_returns_the_daemon_message(client) -> None:
    assert (await client.post("/api/internal/threads", json=thread_body())).status_code == 201
    response = await _start(client)
    assert response.status_code == 200, response.text
    body = response.json()
    message = body["daemonMessage"]
    assert body["delivered"] is False
    assert body["status"] == "booting"
    assert message["type"] == "start"
    assert message["runId"] == body["runId"]
    assert message["payloadVersion"] == 2
    assert message["ingestUrl"] == "http://testserver.local"
    assert message["token"].startswith("tdt_")
    assert message["featureFlags"] == body["frozenFlags"]
    run = (await client.get(f"/api/internal/runs/{body['runId']}")).json()
    assert run["codesandboxId"] == "sb-thread-1"
    assert run["runStartSha"] is None  # manual sandboxes are not readable here


async def test_repeated_start_request_returns_the_same_run(client) -> None:
    await client.post("/api/internal/threads", json=thread_body())
    first = (await _start(client, "same")).json()
    second = (await _start(client, "same")).json()
    assert first["runId"] == second["runId"]


async def test_unknown_thread_is_404_and_unsupported_provider_is_422(client) -> None:
    assert (await _start(client)).status_code == 404
    await client.post("/api/internal/threads", json=thread_body(sandboxProvider="e2b"))
    response = await _start(client)
    assert response.status_code == 422
    assert "e2b" in response.json()["error"]


async def test_local_provider_without_a_daemon_is_a_clear_503(client, tmp_path) -> None:
    await client.post(
        "/api/internal/threads",
        json=thread_body(sandboxProvider="local", codesandboxId="box1", repoDir=str(tmp_path)),
    )
    response = await _start(client)
    assert response.status_code == 503
    assert "daemon" in response.json()["error"]
    assert response.headers["retry-after"]


async def test_a_new_active_run_invalidates_cached_preview_access(client, valkey_url) -> None:
    import valkey.asyncio as valkey_asyncio

    from terragon_core import repo_access_key

    key = repo_access_key("test", "user-1", "acme/web")
    store = valkey_asyncio.from_url(valkey_url)
    await store.set(key, b"1", ex=60)
    await client.post("/api/internal/threads", json=thread_body())
    assert (await _start(client, "fresh")).status_code == 200
    assert await store.exists(key) == 0
    await store.aclose()
