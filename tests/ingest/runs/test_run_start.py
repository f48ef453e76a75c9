"""`POST /api/internal/runs/start` (startAgentMessage) over HTTP: the manual provider, and a
`local` sandbox whose daemon does not take the start message (502, the run minted, the same
`startRequestId` delivers again)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from terragon_core import DeliveryFailure, MetricName
from tests.fixtures.runs import START_PATH, start_body, thread_body
from tests.fixtures.settings import settings_for

BOX = "box1"
SOCKETS = Path(tempfile.gettempdir())
"""`repoDir` of the local threads (not a checkout: the start SHA is then unreadable, logged)."""


@pytest.fixture(name="sockets")
def fx_sockets() -> Iterator[Path]:
    """A short directory for the `local` daemons' sockets (a socket path has at most 108 bytes;
    pytest's tmp paths can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="tg-start-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="settings")
def fx_settings(database_url: str, valkey_url: str, tmp_path: Path, sockets: Path):
    settings = settings_for(database_url, valkey_url, tmp_path)
    return dataclasses.replace(
        settings,
        sandbox=dataclasses.replace(
            settings.sandbox, LOCAL_SOCKET_DIR=sockets, DELIVERY_TIMEOUT=0.5
        ),
    )


class FakeDaemon:
    """A Unix socket where a `local` daemon listens: takes one JSON line per connection and
    answers `reply` (None: never answers; the default: `{"ok": true}`, as the daemon does)."""

    def __init__(self, path: Path, reply: bytes | None = b'{"ok": true}\n') -> None:
        self.messages: list[dict[str, Any]] = []
        self.reply = reply
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn, conn.makefile("rwb") as stream:
                self.messages.append(json.loads(stream.readline()))
                if self.reply is None:
                    conn.recv(1)  # until the service gives up and closes
                    continue
                stream.write(self.reply)
                stream.flush()

    def __enter__(self) -> FakeDaemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)


async def _start(client, request_id: str = "req-1", chat: str = "chat-1"):
    return await client.post(START_PATH, json=start_body(chat=chat, request_id=request_id))


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


def _local_thread(box: str = BOX) -> dict[str, Any]:
    return thread_body(sandboxProvider="local", codesandboxId=box, repoDir=str(SOCKETS))


def _failures(app: Any, reason: DeliveryFailure) -> float:
    return app.state.runs.metrics.value(
        MetricName.RUN_START_DELIVERY_FAILED,
        repo="acme/web",
        user="user-1",
        provider="local",
        reason=reason.value,
    )


async def test_local_provider_without_a_daemon_is_a_502_naming_the_minted_run(
    client, app, sockets: Path
) -> None:
    """Before: 503 `DeliveryFailed` with Retry-After, as if this service were down, and no
    runId: the caller could not tell the run was minted."""
    await client.post("/api/internal/threads", json=_local_thread())
    response = await _start(client)
    assert response.status_code == 502, response.text
    body = response.json()
    assert (body["code"], body["reason"]) == ("DeliveryFailed", "daemon_unreachable")
    run = await client.get(f"/api/internal/runs/{body['runId']}")
    assert (run.status_code, run.json()["status"]) == (200, "booting")
    assert body["error"] == (
        "the sandbox's daemon did not take the start message (daemon_unreachable); the run "
        f"{body['runId']} is minted: retry with the same startRequestId to deliver it again"
    )
    assert re.fullmatch(r"[0-9a-f]{32}", body["traceId"])
    assert str(sockets) not in response.text and "retry-after" not in response.headers
    assert _failures(app, DeliveryFailure.DAEMON_UNREACHABLE) == 1


async def test_the_same_start_request_delivers_once_the_daemon_is_up(
    client, app, sockets: Path
) -> None:
    await client.post("/api/internal/threads", json=_local_thread())
    failed = (await _start(client, "again")).json()
    with FakeDaemon(sockets / f"{BOX}.sock") as daemon:
        response = await _start(client, "again")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["runId"], body["delivered"]) == (failed["runId"], True)
    [message] = daemon.messages
    assert (message["type"], message["runId"]) == ("start", failed["runId"])
    assert message["token"] == body["daemonMessage"]["token"]
    assert _failures(app, DeliveryFailure.DAEMON_UNREACHABLE) == 1


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b'{"ok": false, "error": "busy"}\n', DeliveryFailure.DAEMON_REFUSED),
        (b"\x1b[2J not json\n", DeliveryFailure.DAEMON_REFUSED),
        (b"[1, 2]\n", DeliveryFailure.DAEMON_REFUSED),
        (b"", DeliveryFailure.DAEMON_REFUSED),  # closes without a word
        (None, DeliveryFailure.DAEMON_TIMEOUT),  # takes the message, never answers
    ],
    ids=["refuses", "garbage", "not-an-object", "hangs-up", "silent"],
)
async def test_a_daemon_that_does_not_take_the_message_is_a_502_with_its_reason(
    client, app, sockets: Path, reply: bytes | None, reason: DeliveryFailure
) -> None:
    await client.post("/api/internal/threads", json=_local_thread())
    with FakeDaemon(sockets / f"{BOX}.sock", reply=reply):
        response = await _start(client)
    assert response.status_code == 502, response.text
    body = response.json()
    assert (body["reason"], bool(body["runId"])) == (reason.value, True)
    assert "busy" not in response.text and "json" not in body["error"].lower()
    assert _failures(app, reason) == 1


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


async def test_the_schema_documents_the_502_and_its_fields(client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    answer = schema["paths"]["/api/internal/runs/start"]["post"]["responses"]["502"]
    assert all(r.value in answer["description"] for r in DeliveryFailure)
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"code", "error", "reason", "runId", "traceId"} <= set(body["properties"])
