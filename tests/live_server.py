"""A real HTTP server for end-to-end tests: the app under uvicorn in a thread, on 127.0.0.1.

Daemons are separate processes and need a socket to post to; `AsyncTestClient` is not one.
`LiveServer.stop()` / `start()` let a test take the service away and bring it back on the same port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from terragon_ingest.app import create_app
from terragon_ingest.kit.http_protocol import server_options

if TYPE_CHECKING:
    from litestar import Litestar

    from terragon_ingest.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server: uvicorn.Server | None = None
        self.app: Litestar | None = None
        """The app being served (its `state`: the deps objects, for tests that watch inside)."""
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        # The options of `terragon serve` (the edge limits and its protocol), so tests meet the edge.
        options = {**server_options(self.settings), "host": "127.0.0.1", "port": self.port}
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, **options)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(30)
        self._server = None
        self._thread = None
