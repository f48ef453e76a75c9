"""The daemon's settings: one frozen object built by the CLI (or by tests) and passed down.

The few environment variables the daemon reads are the defaults of its command-line options
(`DaemonEnvironment`, read by `cli.build_parser`; an option given wins). This module is the
daemon's only reader of the environment. It has a reader of its own rather than
`terragon_core.env`: the daemon is a stdlib-only zipapp that runs in sandboxes and imports nothing
of the workspace (core needs msgspec). `EnvVar` has the same shape as core's (a test keeps them in
step), so `docs/configuration.md`'s table lists these too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: the fields of `terragon_core.env.EnvVar` the table needs."""

    name: str
    kind: str
    default: object
    doc: str
    shown_default: str | None = None

    def read(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The text given for it (empty counts as unset), else None."""
        value = (os.environ if environ is None else environ).get(self.name)
        return value or None


HOME = EnvVar(
    "TERRAGON_DAEMON_HOME",
    "path",
    None,
    "Where the daemon keeps its control socket and spool unless `--socket` / `--spool-dir` "
    "(or the two variables below) say otherwise.",
    shown_default="`~/.terragon-daemon`",
)
SOCKET = EnvVar(
    "TERRAGON_DAEMON_SOCKET",
    "path",
    None,
    "The daemon's control socket (`--socket` wins).",
    shown_default="`$TERRAGON_DAEMON_HOME/daemon.sock`",
)
SPOOL_DIR = EnvVar(
    "TERRAGON_DAEMON_SPOOL_DIR",
    "path",
    None,
    "Sealed batches, run state and dead letters (`--spool-dir` wins).",
    shown_default="`$TERRAGON_DAEMON_HOME/spool`",
)
LOG_LEVEL = EnvVar(
    "TERRAGON_DAEMON_LOG_LEVEL",
    "str",
    "info",
    "`debug`, `info`, `warning` or `error` (`--log-level` wins).",
)
ENV_VARS: tuple[EnvVar, ...] = (HOME, SOCKET, SPOOL_DIR, LOG_LEVEL)


@dataclass(frozen=True)
class DaemonEnvironment:
    """The defaults the environment gives the daemon's options."""

    home: Path
    socket: Path
    spool_dir: Path
    log_level: str

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> DaemonEnvironment:
        home = Path(HOME.read(environ) or Path.home() / ".terragon-daemon")
        return cls(
            home=home,
            socket=Path(SOCKET.read(environ) or home / "daemon.sock"),
            spool_dir=Path(SPOOL_DIR.read(environ) or home / "spool"),
            log_level=LOG_LEVEL.read(environ) or "info",
        )


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
