"""`DaemonEventFastPath`: `POST /api/daemon-event` answered without Litestar's router answers
exactly as Litestar's route does (`/api/daemon-event/` is the same route, reached through the
router), failures included; every other request still goes through Litestar."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from terragon_ingest.daemon_events import routes
from tests.fixtures.daemon_events import envelope, post
from tests.fixtures.runs import start_run

PATH = "/api/daemon-event"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _answer(response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.headers.multi_items()), response.content


async def _both(client, content: bytes, headers: dict[str, str]):
    fast = await client.post(PATH, content=content, headers=headers)
    routed = await client.post(PATH + "/", content=content, headers=headers)
    return _answer(fast), _answer(routed)


@pytest.mark.parametrize(
    ("content", "token"),
    [
        (b'{"threadId": "t"}', None),  # no token: 401
        (b'{"threadId": "t"}', "tok_unknown"),  # unknown token: 401
    ],
)
async def test_refusals_are_the_routes(client, content: bytes, token: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Daemon-Token"] = token
    fast, routed = await _both(client, content, headers)
    assert fast[0] == 401
    assert fast == routed


async def test_invalid_body_is_the_routes(client) -> None:
    _run_id, token = await start_run(client)
    headers = {"Content-Type": "application/json", "X-Daemon-Token": token}
    fast, routed = await _both(client, b'{"threadId": 7, "messages": []}', headers)
    assert fast[0] == 400
    assert fast == routed


async def test_an_unexpected_failure_is_litestars_500(client, monkeypatch) -> None:
    run_id, token = await start_run(client)

    async def crash(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(routes, "handle_delivery", crash)
    headers = {
        "Content-Type": "application/json",
        "X-Daemon-Token": token,
        "traceparent": TRACEPARENT,
    }
    fast, routed = await _both(client, msgspec.json.encode(envelope(run_id, 1)), headers)
    assert fast[0] == 500
    assert b"boom" not in fast[2]
    assert fast == routed


async def test_an_applied_envelope_goes_the_fast_path(client, monkeypatch) -> None:
    run_id, token = await start_run(client)
    taken: list[str] = []
    original = routes.handle_delivery

    async def spy(*args: object):
        taken.append("handled")
        return await original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(routes, "handle_delivery", spy)
    assert isinstance(client.app.asgi_handler.app, routes.DaemonEventFastPath)
    response = await post(client, envelope(run_id, 1), token)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    assert taken == ["handled"]


async def test_other_methods_and_bad_hosts_go_through_litestar(client) -> None:
    assert (await client.get(PATH)).status_code == 405
    response = await client.post(PATH, content=b"{}", headers={"Host": "bad host"})
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid host header"


@pytest.mark.parametrize(
    "raw",
    [
        [(b"x-daemon-token", b"a"), (b"traceparent", b"t"), (b"content-length", b"12")],
        [(b"X-Daemon-Token", b"first"), (b"x-daemon-token", b"second")],
        [(b"content-length", b" 7 "), (b"Content-Length", b"9"), (b"TRACEPARENT", b"\xe9")],
        [(b"host", b"h"), (b"content-type", b"application/json")],
    ],
)
def test_headers_read_as_litestar_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    from litestar.datastructures import Headers

    from terragon_core import DAEMON_TOKEN_HEADER, TRACEPARENT_HEADER

    litestar = Headers(raw)
    expected = tuple(
        litestar.get(name) for name in (DAEMON_TOKEN_HEADER, TRACEPARENT_HEADER, "content-length")
    )
    assert routes._read_headers(raw) == expected


@pytest.mark.parametrize("value", ["12", " 7 ", "+3", "1_0", "x1", "", "1.5", "\xe9"])
def test_content_length_reads_as_litestars(value: str) -> None:
    from litestar import Request
    from litestar.exceptions import ClientException

    scope: Any = {"type": "http", "headers": [(b"content-length", value.encode("latin-1"))]}
    try:
        expected: object = Request(scope).content_length
    except ClientException as exc:
        expected = exc.detail
    try:
        got: object = routes._length(value)
    except ClientException as exc:
        got = exc.detail
    assert got == expected
