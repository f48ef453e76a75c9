"""`sendDaemonMessage`: hand a start message to the sandbox's daemon. Used only by run start.

- `local`: the daemon listens on `{socket_dir}/{codesandboxId}.sock` (JSON lines, one reply line).
- `docker`: the daemon inside the container `codesandboxId`, through the Engine API
  (docker_delivery.py).
- `manual`: nothing is delivered; the caller receives the message and delivers it itself.
- other providers (`e2b`, `daytona`): not supported by this deployment (a clear 422, before any
  run is created). A new provider is one module with a `deliver` like docker_delivery's.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import structlog

from terragon_core import DaemonStartMessage, SandboxProvider
from terragon_ingest.errors import ServiceUnavailable, UnsupportedProvider
from terragon_ingest.sandbox import docker_delivery
from terragon_ingest.sandbox.docker_engine import CONTAINER_REF
from terragon_ingest.settings import SandboxSettings

log = structlog.get_logger()

SUPPORTED_PROVIDERS = frozenset(
    {SandboxProvider.LOCAL, SandboxProvider.DOCKER, SandboxProvider.MANUAL}
)


class DeliveryFailed(ServiceUnavailable):
    """The daemon did not accept the start message; the run exists, retry the same start request."""


def ensure_supported(provider: SandboxProvider) -> None:
    if provider not in SUPPORTED_PROVIDERS:
        supported = ", ".join(sorted(p.value for p in SUPPORTED_PROVIDERS))
        raise UnsupportedProvider(
            f"sandbox provider {provider.value!r} is not supported by this deployment "
            f"(supported: {supported})"
        )


def local_socket_path(socket_dir: Path, codesandbox_id: str) -> Path:
    if "/" in codesandbox_id or codesandbox_id in {"", ".", ".."}:
        raise UnsupportedProvider(
            f"codesandboxId {codesandbox_id!r} is not a valid local sandbox id"
        )
    return socket_dir / f"{codesandbox_id}.sock"


async def send_daemon_message(
    provider: SandboxProvider,
    message: DaemonStartMessage,
    *,
    codesandbox_id: str,
    repo_dir: str | None,
    socket_dir: Path,
    delivery_timeout: float,
    settings: SandboxSettings | None = None,
) -> bool:
    """Deliver `message`; True when a daemon accepted it, False for `manual` (caller delivers)."""
    ensure_supported(provider)
    if provider is SandboxProvider.MANUAL:
        return False
    payload: dict[str, Any] = msgspec.to_builtins(message)
    if repo_dir:
        payload["repoDir"] = repo_dir  # platform-side extra: where the agent runs
    if provider is SandboxProvider.DOCKER:
        await _deliver_docker(
            payload, codesandbox_id, settings or SandboxSettings(), delivery_timeout
        )
        return True
    path = local_socket_path(socket_dir, codesandbox_id)
    try:
        async with asyncio.timeout(delivery_timeout):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(json.dumps(payload).encode() + b"\n")
                await writer.drain()
                reply = json.loads(await reader.readline() or b"{}")
            finally:
                writer.close()
                await writer.wait_closed()
    except (OSError, TimeoutError, ValueError) as exc:
        raise DeliveryFailed(
            f"daemon at {str(path)!r} did not take the start message ({type(exc).__name__}: {exc}); "
            "is the daemon running? retry the same startRequestId"
        ) from exc
    if not reply.get("ok"):
        raise DeliveryFailed(
            f"daemon at {str(path)!r} refused the start message: {reply.get('error')!r}"
        )
    log.info("daemon_message_delivered", run_id=message.run_id, socket=str(path))
    return True


def docker_container_ref(codesandbox_id: str) -> str:
    if not CONTAINER_REF.fullmatch(codesandbox_id):
        raise UnsupportedProvider(
            f"codesandboxId {codesandbox_id[:80]!r} is not a Docker container name or id"
        )
    return codesandbox_id


async def _deliver_docker(
    payload: dict[str, Any], codesandbox_id: str, settings: SandboxSettings, time_limit: float
) -> None:
    container = docker_container_ref(codesandbox_id)
    try:
        async with asyncio.timeout(time_limit):
            await docker_delivery.deliver(
                payload, codesandbox_id=container, settings=settings, time_limit=time_limit
            )
    except (docker_delivery.DockerDeliveryError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {time_limit:g} s"
        raise DeliveryFailed(
            f"the daemon in docker container {container!r} did not take the start message "
            f"({reason}); retry the same startRequestId"
        ) from exc
