"""A PostgreSQL primary and a streaming standby on this machine, for the failover test
(`tests/ingest/db/test_failover.py`) and the fault campaign: the embedded server's binaries
(pgserver's `pginstall/bin`: `initdb`, `pg_basebackup`, `pg_ctl`; FIELD-NOTES "Standbys and
clocks for fault tests") on two loopback ports, so the service is given the multi-host URL an
operator gives it (`url()`). In tools/, beside `s3_server.py`: the campaign is a tool, and tools
never import tests.

Synchronous by default: the primary runs with `synchronous_standby_names = '*'` and
`synchronous_commit = on`, so a commit returns only once the standby has flushed its WAL; with
`synchronous=False` the standby streams asynchronously (what a failover can lose then is what the
campaign's asynchronous mode measures). Both settings are on the primary's command line, never in
its files: `pg_basebackup` copies those, and a promoted standby must not wait for a standby of
its own that does not exist.

`kill_primary()` SIGKILLs the primary's whole process group (the postmaster and every backend at
once, as a host that dies takes them), `promote()` makes the standby the primary. Both servers run
with `fsync = off`: the fault here is a process killed, never the machine, so the OS keeps every
write (never use it for data you keep).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tools.bench.stack import free_port

_USER = "postgres"


def _bin(name: str) -> Path:
    with warnings.catch_warnings():  # pgserver warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from pgserver import _commands
    return Path(_commands.POSTGRES_BIN_PATH) / name


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, the servers run as pgserver's own user (as
    `terragon_ingest.embedded` runs them)."""
    return "pgserver" if os.geteuid() == 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie no one has reaped yet is gone
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Node:
    """One server: its data directory, loopback port and Unix socket directory."""

    name: str
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def pgdata(self) -> Path:
        return self.root / self.name

    @property
    def socket_dir(self) -> Path:
        return self.root / f"{self.name}-sock"

    @property
    def log_file(self) -> Path:
        return self.root / f"{self.name}.log"

    def url(self, database: str = "postgres") -> str:
        """This server alone (for checks made on one server, e.g. what the new primary holds)."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class PrimaryAndStandby:
    """Start with `start()`, stop with `stop()` (which also removes `root`)."""

    root: Path
    synchronous: bool = True
    primary: Node = field(init=False)
    standby: Node = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.primary = Node("primary", self.root)
        self.standby = Node("standby", self.root)

    def url(self, database: str = "postgres") -> str:
        """Both servers in libpq's multi-host form, as an operator names a primary and its
        standby: a connection goes to whichever of them accepts writes."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in (self.primary, self.standby))
        return f"postgresql://{_USER}@{hosts}/{database}?target_session_attrs=read-write"

    def _run(self, name: str, *args: str, timeout: float = 60) -> None:
        command = [str(_bin(name)), *args]
        try:
            subprocess.run(
                command, check=True, capture_output=True, user=_system_user(), timeout=timeout
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"{' '.join(command)} failed ({exc.returncode}): {exc.stderr.decode()[-2000:]}"
            ) from exc

    def _prepare(self, node: Node) -> None:
        """An empty data directory, socket directory and log file the server's user owns."""
        node.pgdata.mkdir(mode=0o700, parents=True)
        node.socket_dir.mkdir(mode=0o777)
        node.socket_dir.chmod(0o777)
        node.log_file.touch()
        user = _system_user()
        if user is not None:
            import pwd

            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(user)
            ensure_prefix_permissions(node.pgdata)
            ensure_prefix_permissions(_bin("postgres"))
            info = pwd.getpwnam(user)
            for path in (node.pgdata, node.log_file):
                os.chown(path, info.pw_uid, info.pw_gid)

    def _start(self, node: Node, *settings: str) -> None:
        # pg_ctl runs the server through /bin/sh: the quotes keep `*` from the shell's globbing.
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {node.port}",
            f"-k {node.socket_dir}",
            "-c fsync=off",
            *settings,
        ]
        self._run(
            "pg_ctl", "-D", str(node.pgdata), "-l", str(node.log_file), "-w",
            "-o", " ".join(options), "start",
        )  # fmt: skip

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self._prepare(self.primary)
        self._run(
            "initdb", "-D", str(self.primary.pgdata), "--auth=trust", "--encoding=utf8",
            "-U", _USER, "--no-sync",
        )  # fmt: skip
        replication = ["-c synchronous_commit=on"]
        if self.synchronous:
            replication.append("-c synchronous_standby_names='*'")
        self._start(self.primary, *replication)
        self._prepare(self.standby)
        self._run(
            "pg_basebackup", "-D", str(self.standby.pgdata), "-h", "127.0.0.1",
            "-p", str(self.primary.port), "-U", _USER, "-X", "stream", "-c", "fast", "-R",
            "--no-sync",
        )  # fmt: skip
        self._start(self.standby)
        self._wait_streaming()

    def _wait_streaming(self, timeout: float = 30.0) -> None:
        """Until the primary sees its standby streaming (as `sync` when synchronous)."""
        wanted = "sync" if self.synchronous else "async"
        deadline = time.monotonic() + timeout
        state: list[tuple[Any, ...]] = []
        while time.monotonic() < deadline:
            with psycopg.connect(self.primary.url(), autocommit=True) as conn:
                state = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
            if ("streaming", wanted) in state:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the standby is not streaming ({wanted}) after {timeout}s: {state}")

    def kill_primary(self, timeout: float = 10.0) -> None:
        """SIGKILL the primary's postmaster and every backend at once (pg_ctl starts the
        postmaster as the leader of its own process group); return once they are gone."""
        pid = self.primary.pid()
        assert pid is not None, "the primary is not running"
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # not a group leader after all: the postmaster, then its own
            children = [p for p in Path("/proc").glob("[0-9]*") if _parent(p) == pid]
            for process in (pid, *(int(p.name) for p in children)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the primary (pid {pid}) outlived SIGKILL for {timeout}s")
            time.sleep(0.01)

    def promote(self) -> None:
        """The standby becomes the primary (returns once it accepts writes)."""
        self._run("pg_ctl", "-D", str(self.standby.pgdata), "-w", "promote")

    def rebuild_old_primary(self) -> None:
        """After `kill_primary()` and `promote()`: the dead primary comes back as the new
        primary's standby on its old port (a fresh `pg_basebackup`, as an operator re-seeds a
        node whose disk is gone), and the roles swap. Synchronous again when `synchronous`:
        `ALTER SYSTEM` on the new primary (a promoted standby has no standby names of its own),
        so commits wait for the rebuilt standby from here on."""
        dead, new = self.primary, self.standby
        shutil.rmtree(dead.pgdata, ignore_errors=True)
        shutil.rmtree(dead.socket_dir, ignore_errors=True)
        self._prepare(dead)
        self._run(
            "pg_basebackup", "-D", str(dead.pgdata), "-h", "127.0.0.1",
            "-p", str(new.port), "-U", _USER, "-X", "stream", "-c", "fast", "-R", "--no-sync",
            timeout=300,
        )  # fmt: skip
        self._start(dead)
        self.primary, self.standby = new, dead
        if self.synchronous:
            with psycopg.connect(new.url(), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                conn.execute("SELECT pg_reload_conf()")
        self._wait_streaming()

    def stop(self) -> None:
        """Stop what still runs (immediately: the data is thrown away) and remove `root`."""
        for node in (self.standby, self.primary):
            pid = node.pid()
            if pid is None or not _alive(pid):
                continue
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(node.pgdata), "-m", "immediate", "-w", "stop")
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
