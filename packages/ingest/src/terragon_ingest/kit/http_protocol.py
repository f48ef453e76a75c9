"""The service's HTTP/1.1 edge: uvicorn's httptools protocol, bounded in time and connections,
with one send per response.

**Edge limits** (CONTRACT §3; `EdgeProtocol`, options from `server_options`). uvicorn bounds
only the idle time between requests, and only after a first one; nothing bounds a request's
receipt, and ASGI middleware runs only once the headers are parsed. So the protocol keeps one
deadline per connection, set at each phase change and pushed on by each body chunk (a float
store), and one timer handle that re-arms itself lazily when it fires before the deadline: no
timer or task per request or chunk.

| phase | deadline | when it passes |
|---|---|---|
| a new connection, nothing sent yet | keep-alive idle (5 s) | closed |
| a request's first byte → headers complete | header timeout (10 s) | 408, closed |
| body, while the service waits for it | body timeout (10 s) since the last chunk | 408 (or closed, once an answer has started) |
| body, the app not reading (reading paused) | none: it is the service's time | |
| the rest of a body answered early | body timeout, and 3 of them in all | closed |
| after the response | uvicorn's keep-alive timer (5 s) | closed |

A connection over `TERRAGON_MAX_CONNECTIONS` is answered 503 and closed at once (never queued);
a request with two `Host` headers is answered 400 by the protocol, before the app sees it. When
the app answered before the body ended (a 401 from the headers, a 413), the rest of the body is
read and dropped as it comes (nothing of it is kept), within three body timeouts in all; where the
connection is to close, it half-closes first (the answer and a FIN go out, then the rest is
dropped), so that a client sending its whole body before it reads gets the answer, not a reset.

**One send per response** (`CoalescingHttpToolsProtocol`). uvicorn writes a response's status line
and headers as soon as the app sends `http.response.start`, and its body with the next message: two
`send(2)` calls for every answer of this service, which are all small and whole. On the machines
this runs on a system call is not cheap (profiled under `tools/bench --profile`: uvicorn's `send`
held ~20% of a worker's CPU). Writes made while the app is producing one response are held and go
out together: the held bytes leave with the next write, or at the latest when the event loop next
runs its ready callbacks (so a streamed response is never held back longer than one loop turn).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from terragon_core import EdgeRejection, MetricName

if TYPE_CHECKING:
    from terragon_ingest.settings import Settings

_log = structlog.get_logger()


class _CoalescingTransport:
    """The connection's transport, with the writes of one loop turn sent as one."""

    __slots__ = ("_flush_handle", "_held", "_loop", "_transport", "linger")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self.linger: Callable[[], bool] | None = None
        """Asked on `close()`: True when the protocol half-closed instead (`EdgeProtocol`)."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held:  # the body after its headers: one send
            self._held.append(bytes(data))
            self.flush()
            return
        self._held.append(bytes(data))
        self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._transport.write(data)

    def close(self) -> None:
        if self.linger is not None and self.linger():
            return
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.Config(http=CoalescingHttpToolsProtocol)`: see the module docstring."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self.transport = _CoalescingTransport(transport, self.loop)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The bounds of every connection (CONTRACT §3 "Edge limits"; settings in the server group)."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        server = settings.server
        return cls(
            header_timeout=server.HEADER_TIMEOUT,
            body_timeout=server.BODY_TIMEOUT,
            keep_alive_timeout=server.KEEP_ALIVE_TIMEOUT,
            max_connections=server.MAX_CONNECTIONS,
        )


_NEVER = math.inf
_DRAIN_TIMEOUTS = 3
"""The rest of a body answered early is dropped for at most this many body timeouts in all."""


def _answer(status: int, reason: EdgeRejection, error: str) -> bytes:
    """A whole `connection: close` answer, written by the protocol itself (no app involved)."""
    body = json.dumps({"code": reason.value, "error": error}).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


_HEADER_TIMEOUT = _answer(408, EdgeRejection.HEADER_TIMEOUT, "request headers not complete in time")
_BODY_TIMEOUT = _answer(408, EdgeRejection.BODY_TIMEOUT, "request body stalled")
_TOO_MANY = _answer(503, EdgeRejection.TOO_MANY_CONNECTIONS, "too many connections; retry later")
_DUPLICATE_HOST_BODY = json.dumps(
    {"code": EdgeRejection.DUPLICATE_HOST.value, "error": "more than one Host header"}
).encode()


async def _duplicate_host(scope: Any, receive: Any, send: Any) -> None:
    """The app a request with two `Host` headers gets instead of the service's: 400, closed."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_DUPLICATE_HOST_BODY)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": _DUPLICATE_HOST_BODY})


class EdgeProtocol(CoalescingHttpToolsProtocol):
    """`uvicorn.Config(http=functools.partial(EdgeProtocol, limits=...))`: see the module
    docstring (`server_options` builds it)."""

    def __init__(self, *args: Any, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._deadline = _NEVER
        self._on_expiry = self._close_idle
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        """The app answered before the body ended: the rest is read and dropped (`_drain`)."""
        self._drain_until = _NEVER
        self._lingered = False
        """The connection half-closed (or is being closed): the next `close()` is the real one."""

    # the one timer: `_deadline` moves freely; the handle re-arms when it fires early
    def _arm(self, deadline: float, on_expiry: Callable[[], None]) -> None:
        self._deadline = deadline
        self._on_expiry = on_expiry
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._fire)
        elif timer.when() > deadline:  # only a phase change moves a deadline earlier
            timer.cancel()
            self._timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline == _NEVER or self.transport is None or self.transport.is_closing():
            return
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._fire)
            return
        self._on_expiry()

    def _disarm(self) -> None:
        self._deadline = _NEVER

    def _close_idle(self) -> None:
        self._lingered = True
        self.transport.close()

    def _drain(self) -> None:
        """The response is out, the request's body is not in: drop the rest of it as it comes (not
        kept), under the body timeout and within `_DRAIN_TIMEOUTS` of them in all, then close.
        (A bound in all: after a 401 nothing makes a stranger's trickle worth waiting for; a
        few timeouts' worth: a daemon's 413 still reaches it over a slow link.)"""
        self._draining = True
        self.cycle.body = bytearray()
        now = self.loop.time()
        self._drain_until = now + _DRAIN_TIMEOUTS * self._body_timeout
        self._arm(now + self._body_timeout, self._close_idle)

    def _linger(self) -> bool:
        """`transport.close()` after an answer given before the body ended (`Connection: close`):
        closing with unread bytes would reset the connection under the answer (a client that sends
        its whole body first would never read it). Half-close instead: the answer and a FIN go
        out, the rest of the body is dropped (`_drain`), then the connection closes."""
        cycle = self.cycle
        if (
            self._lingered
            or cycle is None
            or not (cycle.response_complete and cycle.more_body)
            or not self.transport.can_write_eof()
        ):
            return False
        self._lingered = True
        self.transport.write_eof()  # flushes the answer first
        if not self._draining:
            self._drain()
        return True

    def _headers_late(self) -> None:
        self._refuse(EdgeRejection.HEADER_TIMEOUT, _HEADER_TIMEOUT)

    def _body_stalled(self) -> None:
        cycle = self.cycle
        if (
            self.flow.read_paused or cycle.waiting_for_100_continue
        ) and not cycle.response_complete:
            # The app has not asked for the body yet (its own time, e.g. a slow dependency; or the
            # client waits for its `100 Continue`): not the client's stall.
            self._arm(self.loop.time() + self._limits.body_timeout, self._body_stalled)
            return
        if cycle.response_started:  # an answer is under way: it cannot become a 408
            self._record(EdgeRejection.BODY_TIMEOUT)
            self._close_idle()
            return
        self._refuse(EdgeRejection.BODY_TIMEOUT, _BODY_TIMEOUT)

    def _refuse(self, reason: EdgeRejection, answer: bytes) -> None:
        """Answer `answer` (unless a response is under way) and close the connection."""
        self._record(reason)
        cycle = self.cycle
        self._lingered = True  # the close below is the real one
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self.transport.close()
                return
            # The app, if it still runs, sees a disconnect; nothing it sends goes out.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(answer)
        self.transport.close()

    def _record(self, reason: EdgeRejection) -> None:
        metrics = getattr(getattr(self.app, "state", None), "metrics", None)
        if metrics is not None:
            metrics.inc(
                MetricName.EDGE_REJECTED, repo=None, user=None, provider=None, reason=reason.value
            )
        # debug: a flood of them must not become a flood of log lines (the metric counts them)
        _log.debug("edge_rejected", reason=reason.value, client=self.client)

    # uvicorn's protocol
    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self.transport.linger = self._linger  # type: ignore[attr-defined]
        if len(self.connections) > self._limits.max_connections:
            self._lingered = True
            self._record(EdgeRejection.TOO_MANY_CONNECTIONS)
            self.transport.write(_TOO_MANY)
            self.transport.close()  # stops reading at once: no request of it is parsed
            return
        self._arm(self.loop.time() + self._limits.keep_alive_timeout, self._close_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.loop.time() + self._header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        if [name for name, _ in self.headers if name == b"host"][1:]:
            self._record(EdgeRejection.DUPLICATE_HOST)
            app, self.app = self.app, _duplicate_host
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        # No `_arm`: the timer is due by the header deadline, never later than this one.
        self._deadline = self.loop.time() + self._body_timeout
        self._on_expiry = self._body_stalled

    def on_body(self, body: bytes) -> None:
        if self._draining:  # dropped
            self._deadline = min(self.loop.time() + self._body_timeout, self._drain_until)
            return
        super().on_body(body)
        self._deadline = self.loop.time() + self._body_timeout

    def on_message_complete(self) -> None:
        if self._draining:  # the end of a body answered early
            self._draining = False
            super().on_message_complete()
            if self._lingered:  # half-closed: nothing more will be answered
                self.transport.close()
            else:
                self._arm(self.loop.time() + self._limits.keep_alive_timeout, self._close_idle)
            return
        super().on_message_complete()
        self._disarm()  # the app's time from here on

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body and not self._draining:
            self._drain()  # answered before the body was read: keep none of it
        super().on_response_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def edge_protocol(limits: EdgeLimits) -> type[asyncio.Protocol]:
    """uvicorn's `http=`: `EdgeProtocol` bound to `limits`. A partial stands in for the class
    (uvicorn only calls it), and one of a module-level class pickles for `serve --workers N`."""
    return cast("type[asyncio.Protocol]", functools.partial(EdgeProtocol, limits=limits))


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options of every listener (`terragon serve`, `serve --workers N`, `terragon
    up`, and the tests' live server): the edge limits above, and nothing that costs per request."""
    limits = EdgeLimits.of(settings)
    return {
        "http": edge_protocol(limits),
        # Nothing here reads the peer's address or scheme (URLs come from PUBLIC_URL), so no
        # X-Forwarded-* rewriting (a per-request middleware), and no `server:` banner.
        "proxy_headers": False,
        "server_header": False,
        "timeout_keep_alive": limits.keep_alive_timeout,
        "lifespan": "on",
        "log_level": "warning",
        # uvicorn's records go through the root handler (`log_config`): the one format of the
        # rest of the log, not uvicorn's own "WARNING:  ..." lines beside JSON
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def raise_open_files_limit(settings: Settings) -> None:
    """Let the process hold `TERRAGON_MAX_CONNECTIONS` connections plus its own files (pool,
    Valkey, archive): raise the soft `RLIMIT_NOFILE` toward the hard one. Under the common soft
    limit of 1024, the connection cap would otherwise be the kernel's ("Too many open files"
    for the service's own jobs too)."""
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return
    wanted = settings.server.MAX_CONNECTIONS + _OWN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            _log.warning(
                "open_files_limit_low",
                limit=target,
                max_connections=settings.server.MAX_CONNECTIONS,
                action="raise the hard open-files limit (ulimit -Hn) or lower "
                "TERRAGON_MAX_CONNECTIONS",
            )


_OWN_FILES = 256
"""Descriptors the service needs beside its connections (database pool, Valkey, files, pipes)."""
