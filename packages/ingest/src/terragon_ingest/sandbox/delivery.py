"""`sendDaemonMessage`: hand a start message to the sandbox's daemon. Used only by run start.

- `local`: the daemon listens on `{socket_dir}/{codesandboxId}.sock` (JSON lines, one reply line).
- `docker`: the daemon inside the container `codesandboxId`, through the Engine API
  (docker_delivery.py).
- `manual`: nothing is delivered; the caller receives the message and delivers it itself.
- other providers (`e2b`, `daytona`): not supported by this deployment (a clear 422, before any
  run is created). A new provider is one module with a `deliver` like docker_delivery's.

A daemon that does not take the message raises `DeliveryFailed` (reason `DeliveryFailure`): the
run stays minted and `runs/start` answers 502; the same `startRequestId` delivers again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import structlog

from terragon_core import DaemonStartMessage, DeliveryFailure, SandboxProvider
from terragon_ingest.errors import UnsupportedProvider, UpstreamFailed
from terragon_ingest.sandbox import docker_delivery
from terragon_ingest.sandbox.docker_engine import CONTAINER_REF
from terragon_ingest.settings import SandboxSettings

log = structlog.get_logger()

SUPPORTED_PROVIDERS = frozenset(
    {SandboxProvider.LOCAL, SandboxProvider.DOCKER, SandboxProvider.MANUAL}
)


class DeliveryFailed(UpstreamFailed):
    """The sandbox's daemon did not take the start message: `POST /api/internal/runs/start`
    answers 502 with `reason` (a `DeliveryFailure`) and the minted run's `runId`; the same
    `startRequestId` re-attempts the delivery. Every provider's delivery raises this.

    `detail` (socket path, driver text) goes to the log only; the answer says what a caller can
    act on."""

    def __init__(self, reason: DeliveryFailure, *, run_id: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason.value
        self.run_id = run_id

    @property
    def public_message(self) -> str:
        return (
            f"the sandbox's daemon did not take the start message ({self.reason}); the run "
            f"{self.run_id} is minted: retry with the same startRequestId to deliver it again"
        )


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
            payload, codesandbox_id, settings or SandboxSettings(), delivery_timeout, message.run_id
        )
        return True
    path = local_socket_path(socket_dir, codesandbox_id)
    run_id = message.run_id
    try:
        async with asyncio.timeout(delivery_timeout):
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
            except OSError as exc:
                raise DeliveryFailed(
                    DeliveryFailure.DAEMON_UNREACHABLE,
                    run_id=run_id,
                    detail=f"no daemon took a connection at {str(path)!r}: {exc}",
                ) from exc
            try:
                writer.write(json.dumps(payload).encode() + b"\n")
                await writer.drain()
                reply = json.loads(await reader.readline() or b"{}")
            finally:
                writer.close()
                await writer.wait_closed()
    except TimeoutError as exc:
        raise DeliveryFailed(
            DeliveryFailure.DAEMON_TIMEOUT,
            run_id=run_id,
            detail=f"the daemon at {str(path)!r} did not answer within {delivery_timeout} s",
        ) from exc
    except (OSError, ValueError) as exc:
        raise DeliveryFailed(
            DeliveryFailure.DAEMON_REFUSED,
            run_id=run_id,
            detail=f"the daemon at {str(path)!r} broke off ({type(exc).__name__}: {exc})",
        ) from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else reply
        raise DeliveryFailed(
            DeliveryFailure.DAEMON_REFUSED,
            run_id=run_id,
            detail=f"the daemon at {str(path)!r} refused the start message: {error!r}",
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
    payload: dict[str, Any],
    codesandbox_id: str,
    settings: SandboxSettings,
    time_limit: float,
    run_id: str,
) -> None:
    container = docker_container_ref(codesandbox_id)
    try:
        async with asyncio.timeout(time_limit):
            await docker_delivery.deliver(
                payload, codesandbox_id=container, settings=settings, time_limit=time_limit
            )
    except docker_delivery.DockerDeliveryError as exc:
        raise DeliveryFailed(
            exc.reason,
            run_id=run_id,
            detail=f"the daemon in docker container {container!r} did not take the start "
            f"message: {exc}",
        ) from exc
    except TimeoutError as exc:
        raise DeliveryFailed(
            DeliveryFailure.DAEMON_TIMEOUT,
            run_id=run_id,
            detail=f"the daemon in docker container {container!r} did not answer within "
            f"{time_limit:g} s",
        ) from exc
