"""A small asyncio TCP proxy on 127.0.0.1 that can cut a connection right after the upstream
answered (the request was committed, the response never reaches the client): the daemon must
resend the same sealed batch and the service must dedupe it.

With several upstreams (replicas) it balances as a load balancer does: each new connection goes
to the next upstream in turn, and one that refuses the connection (a replica killed or still
starting) is skipped for the next (`failovers` counts those), so the others keep serving."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    upstream_ports: list[int]
    cut_probability: float = 0.0
    seed: int = 7
    port: int = 0
    cuts: int = 0
    connections: int = 0
    failovers: int = 0
    """Connections an upstream refused that went to the next one."""
    per_upstream: dict[int, int] = field(default_factory=dict)
    """Connections each upstream port took."""
    _turn: int = field(default=0, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _server: asyncio.Server | None = field(default=None, init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if cut:
                    # The upstream has answered: the work is committed. Drop the answer.
                    self.cuts += 1
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        opened = await self._open_upstream()
        if opened is None:
            client_w.close()
            return
        up_r, up_w = opened
        cut = self._rng.random() < self.cut_probability
        await asyncio.gather(
            self._pipe(client_r, up_w, cut=False),
            self._pipe(up_r, client_w, cut=cut),
        )
        with contextlib.suppress(Exception):
            up_w.close()
            client_w.close()

    async def _open_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next upstream in turn that accepts the connection (None: every one refused)."""
        ports = self.upstream_ports
        first = self._turn
        self._turn = (self._turn + 1) % len(ports)
        for step in range(len(ports)):
            port = ports[(first + step) % len(ports)]
            try:
                opened = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if len(ports) > 1:
                    self.failovers += 1
                continue
            self.per_upstream[port] = self.per_upstream.get(port, 0) + 1
            return opened
        return None

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=main, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
