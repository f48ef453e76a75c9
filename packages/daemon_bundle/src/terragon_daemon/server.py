"""The control socket: a Unix stream socket speaking JSON lines (see `protocol`).

One JSON object per line in, one JSON object per line back. A connection may carry several
requests. The socket file is made 0600 (the start message carries the run's token) and a
stale file left by a dead daemon is replaced; a live daemon on the same path is an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path

from terragon_daemon.logs import log_event
from terragon_daemon.protocol import ProtocolError, decode_line
from terragon_daemon.supervisor import Daemon

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1024 * 1024


class SocketInUseError(RuntimeError):
    """Another daemon is listening on the socket path."""


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, ControlServer)
        daemon = self.server.daemon
        while True:
            line = self.rfile.readline(MAX_LINE_BYTES)
            if not line:
                return
            if not line.strip():
                continue
            try:
                reply = daemon.handle(decode_line(line))
            except ProtocolError as exc:
                log_event(log, logging.WARNING, "control_message_rejected", error=str(exc))
                reply = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(reply).encode("utf-8") + b"\n")
            self.wfile.flush()


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves control messages for `daemon` on `path` until `shutdown()`."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: Path, daemon: Daemon) -> None:
        self.path = path
        self.daemon = daemon
        _clear_stale_socket(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path), _Handler)
        os.chmod(path, 0o600)  # start messages carry tokens: only our user may connect
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="control", daemon=True)
        self._thread.start()
        log_event(log, logging.INFO, "control_socket_listening", socket=str(self.path))

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _clear_stale_socket(path: Path) -> None:
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a leftover of a daemon that died
        return
    finally:
        probe.close()
    raise SocketInUseError(f"a daemon already listens on {str(path)!r}")


def request(path: Path, message: dict[str, object], timeout: float = 10.0) -> dict[str, object]:
    """Send one control message and read its reply (for the platform side and tests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(json.dumps(message).encode("utf-8") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)
