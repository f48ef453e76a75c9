"""`sendDaemonMessage` for the `docker` provider: the start message goes to the daemon inside the
container, through the Engine API.

The daemon in the container listens on `DOCKER_DAEMON_SOCKET_PATH` (its `--socket`). The
service execs, inside the container, the container's own `python3` (the daemon needs it anyway)
with a fixed ten-line client (`CLIENT`, no shell): the message goes in on stdin, never on a
command line, and the daemon's one-line reply comes back on stdout, read as untrusted text
(capped, JSON-decoded, only `ok` is believed). Nothing on the service's host connects to a path
the container can change: a socket directory mounted from the host could be swapped by the
container for a symlink to any socket of the host.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from terragon_core import DOCKER_DAEMON_SOCKET_PATH, DeliveryFailure
from terragon_ingest.sandbox.docker_engine import DockerEngine, DockerError, untrusted
from terragon_ingest.settings import SandboxSettings

log = structlog.get_logger()

MAX_REPLY_BYTES = 64 * 1024

CLIENT = """\
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[2]))
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
reply = s.makefile("rb").readline(65536)
sys.stdout.buffer.write(reply)
sys.exit(0 if reply else 1)
"""


class DockerDeliveryError(Exception):
    """The daemon in the container did not take the start message (why, for the operator's log;
    `reason` for the answer and the metric)."""

    def __init__(self, message: str, reason: DeliveryFailure) -> None:
        super().__init__(message)
        self.reason = reason


async def deliver(
    payload: dict[str, Any], *, codesandbox_id: str, settings: SandboxSettings, time_limit: float
) -> None:
    """Hand `payload` to the container's daemon; `DockerDeliveryError` unless it answered ok.
    The caller bounds the time (`time_limit` is also the in-container client's socket timeout)."""
    engine = DockerEngine(settings.DOCKER_SOCKET)
    try:
        await engine.running(codesandbox_id)
        result = await engine.exec(
            codesandbox_id,
            ["python3", "-c", CLIENT, DOCKER_DAEMON_SOCKET_PATH, f"{time_limit:g}"],
            env={"LC_ALL": "C"},
            workdir=None,
            stdin=json.dumps(payload).encode() + b"\n",
            max_stdout=MAX_REPLY_BYTES,
        )
    except DockerError as exc:
        raise DockerDeliveryError(str(exc), DeliveryFailure.DAEMON_UNREACHABLE) from exc
    if result.exit_code != 0:
        raise DockerDeliveryError(
            f"the daemon in container {codesandbox_id!r} did not answer on "
            f"{DOCKER_DAEMON_SOCKET_PATH} (exit {result.exit_code}): {untrusted(result.stderr)}",
            DeliveryFailure.DAEMON_UNREACHABLE,
        )
    try:
        reply = json.loads(result.stdout)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply, dict) else result.stdout
        raise DockerDeliveryError(
            f"the daemon in container {codesandbox_id!r} refused the start message: "
            f"{untrusted(str(error))}",
            DeliveryFailure.DAEMON_REFUSED,
        )
    log.info("daemon_message_delivered", run_id=payload.get("runId"), container=codesandbox_id)
