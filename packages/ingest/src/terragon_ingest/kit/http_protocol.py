"""uvicorn's httptools protocol with one send per response instead of two.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, and its body with the next message: two `send(2)` calls for every answer
of this service, which are all small and whole. On the machines this runs on a system call is
not cheap (profiled under `tools/bench --profile`: uvicorn's `send` held ~20% of a worker's CPU).
Writes made while the app is producing one response are held and go out together: the held bytes
leave with the next write, or at the latest when the event loop next runs its ready callbacks
(so a streamed response is never held back longer than one loop turn).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """The connection's transport, with the writes of one loop turn sent as one."""

    __slots__ = ("_flush_handle", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None

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
