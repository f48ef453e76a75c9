"""The daemon's settings: one frozen object built by the CLI (or by tests) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DaemonSettings:
    """Everything tunable. Durations are seconds; 0 `max_attempts` means retry forever."""

    spool_dir: Path
    socket_path: Path | None = None
    payload_version: int | None = None
    """Force `1` (legacy) or `2`; None follows the start message (v2 when it has a `runId`)."""
    flush_interval: float = 0.5
    max_batch_messages: int = 500
    max_batch_bytes: int = 1024 * 1024
    http_timeout: float = 10.0
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    max_attempts: int = 0
    stop_grace: float = 5.0
    shutdown_timeout: float = 10.0
    agent_command: tuple[str, ...] = ()
    """Used when a start message carries no `agentCommand`."""
    repo_dir: str | None = None
    """Used when a start message carries no `repoDir`."""
