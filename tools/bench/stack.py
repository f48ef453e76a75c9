"""The system under test, started for real on this machine: embedded PostgreSQL + Valkey
(`terragon_ingest.embedded`) and the service (`terragon serve`, uvicorn) in a subprocess on
127.0.0.1. Setup (threads, runs, daemon tokens) goes through the real HTTP API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from terragon_core import RUN_MAX_BYTES_PER_MINUTE, RUN_MAX_MESSAGES_PER_MINUTE
from terragon_ingest.embedded import EmbeddedPostgres, EmbeddedValkey
from terragon_ingest.settings import DatabaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
# `terragon serve` refuses default or short secrets (CONTRACT §3): made per bench process.
INTERNAL_TOKEN = secrets.token_urlsafe(32)
METRICS_TOKEN = secrets.token_urlsafe(32)
SERVICE_SECRETS = {
    "TERRAGON_INTERNAL_TOKEN": INTERNAL_TOKEN,
    "TERRAGON_METRICS_TOKEN": METRICS_TOKEN,
    "GITHUB_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    "TERRAGON_SIGNING_SECRET": secrets.token_urlsafe(32),
}
LIFTED_BUDGETS = {
    "TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE": str(10**12),
    "TERRAGON_RUN_MAX_BYTES_PER_MINUTE": str(10**15),
}
CONTRACT_BUDGETS = {
    "TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE": str(RUN_MAX_MESSAGES_PER_MINUTE),
    "TERRAGON_RUN_MAX_BYTES_PER_MINUTE": str(RUN_MAX_BYTES_PER_MINUTE),
}
DATABASE = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (and its reaped children) from /proc, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (3rd field); utime/stime are fields 14/15, cutime/cstime 16/17.
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def proc_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a server's worker processes)."""
    pids = [pid]
    for parent in pids:
        children = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            pids += [int(c) for c in children.read_text().split()]
        except OSError:
            continue
    return pids


def postgres_pids(pgdata: Path) -> list[int]:
    """The postmaster and its children (backends, walwriter, ...)."""
    try:
        master = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == master:
            pids.append(int(entry.name))
    return pids


def postgres_cpu_seconds(pgdata: Path) -> tuple[float, set[int]]:
    """CPU seconds of the postmaster and its children so far (with the reaped ones': a backend's
    CPU moves into the postmaster's cutime/cstime when it exits), and the pids read."""
    pids = postgres_pids(pgdata)
    return sum(proc_cpu_seconds(p) for p in pids), set(pids)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postgres_cpu_after(pgdata: Path, before: set[int], timeout: float = 5.0) -> float:
    """`postgres_cpu_seconds` once the backends of a client that has just disconnected (pgbench)
    are gone: their CPU counts only once the postmaster has reaped them. Waits (at most
    `timeout`) until no backend started after `before` was read is left, autovacuum's aside."""
    deadline = time.monotonic() + timeout
    while True:
        pids = postgres_pids(pgdata)
        new = [p for p in pids if p not in before and "autovacuum" not in _cmdline(p)]
        if not new or time.monotonic() > deadline:
            return sum(proc_cpu_seconds(p) for p in pids)
        time.sleep(0.01)


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 2xx (or the process died, or the deadline passed)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 300:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s ({last})")


@dataclass(slots=True)
class RunHandle:
    thread_id: str
    thread_chat_id: str
    run_id: str
    token: str

    @property
    def token_sha256(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


@dataclass
class Server:
    """A server subprocess on 127.0.0.1 (the service, or a ceiling app)."""

    argv: list[str]
    env: dict[str, str]
    port: int
    health_path: str = "/healthz"
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 180.0) -> None:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            wait_http(self.url + self.health_path, timeout, self.proc)
        except BaseException:  # never leave a half-started server (and its workers) behind
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL (the chaos campaign's fault)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Stack:
    """Embedded PostgreSQL + Valkey and the ingest service, all under `root`."""

    root: Path
    pool_max: int = 16
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    pg: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    service: Server | None = None
    db_url: str = ""
    valkey_url: str = ""

    def start_backends(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg = EmbeddedPostgres(self.root / "pg", fast=DatabaseSettings().EMBEDDED_FAST)
        self.pg.start()
        self.db_url = self.fresh_database(DATABASE)
        self.start_valkey()

    def start_valkey(self) -> None:
        """Valkey alone (the campaign's failover mode brings its own PostgreSQL pair)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.valkey = EmbeddedValkey(self.root / "valkey")
        self.valkey_url = self.valkey.start()

    def fresh_database(self, name: str) -> str:
        """A new database on the embedded server, migrated to head; returns its URL."""
        from terragon_ingest.app import run_migrations

        assert self.pg is not None
        self.pg.ensure_database(name)
        url = self.pg.url(name)
        run_migrations(url)
        return url

    def service_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TERRAGON_", "DATABASE_URL", "VALKEY_URL"))
        }
        env.update(
            {
                "DATABASE_URL": self.db_url,
                "VALKEY_URL": self.valkey_url,
                "TERRAGON_ENV": "bench",
                **SERVICE_SECRETS,
                "TERRAGON_DATA_DIR": str(self.root / "data"),
                "TERRAGON_BACKGROUND_JOBS": "false",
                "TERRAGON_LOG_LEVEL": "warning",
                "TERRAGON_DB_POOL_MAX": str(self.pool_max),
                # The whole stack runs on this machine (as `terragon up`): preview upstreams
                # on 127.0.0.1 are allowed.
                "TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM": "true",
                # The path benchmarks drive a few runs far past a tenant's budget on purpose (one
                # run at c1, the same envelopes again for the duplicate path): they measure the
                # decision's cost, so the budgets are lifted (still charged on every envelope).
                # `fairness` runs a service of its own on the contract's defaults.
                **LIFTED_BUDGETS,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start_service(
        self, port: int | None = None, *, env: dict[str, str] | None = None
    ) -> Server:
        """The service under test (`self.service`); `env`: this process's own settings on top
        (a replica's data directory, ...)."""
        self.service = self.spawn_service(port, env)
        return self.service

    def spawn_service(
        self, port: int | None = None, env: dict[str, str] | None = None, name: str = "service"
    ) -> Server:
        """Another `terragon serve` on the same databases (`env` overrides settings); the caller
        stops it."""
        port = port or free_port()
        env = {
            **self.service_env(),
            "TERRAGON_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **(env or {}),
        }
        argv = [
            sys.executable,
            "-m",
            "terragon_ingest.cli",
            "--log-format",
            "json",
            "--log-level",
            "warning",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(self.workers),
        ]
        server = Server(argv, env, port, log_path=self.root / f"{name}.log")
        server.start()
        return server

    def client(self) -> httpx.Client:
        assert self.service is not None
        return internal_client(self.service.url)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self.valkey is not None:
            self.valkey.stop()
        if self.pg is not None:
            self.pg.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def internal_client(base_url: str, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        timeout=timeout,
    )


def create_run(
    client: httpx.Client,
    thread_id: str,
    *,
    user_id: str = "bench-user",
    repo: str = "bench/repo",
    chat_id: str = "chat-1",
    request_id: str | None = None,
    repo_dir: str | None = None,
    provider: str = "manual",
) -> tuple[RunHandle, dict[str, Any]]:
    """POST /api/internal/threads + /api/internal/runs/start; returns the run and its start message."""
    body: dict[str, Any] = {
        "threadId": thread_id,
        "userId": user_id,
        "repoFullName": repo,
        "sandboxProvider": provider,
        "codesandboxId": f"sb-{thread_id}",
    }
    if repo_dir is not None:
        body["repoDir"] = repo_dir
    client.post("/api/internal/threads", json=body).raise_for_status()
    response = client.post(
        "/api/internal/runs/start",
        json={
            "threadId": thread_id,
            "threadChatId": chat_id,
            "startRequestId": request_id or f"req-{thread_id}",
            "triggerSource": "ui",
        },
    )
    response.raise_for_status()
    started = response.json()
    message = started["daemonMessage"]
    handle = RunHandle(thread_id, chat_id, started["runId"], message["token"])
    return handle, message


def create_runs(client: httpx.Client, prefix: str, count: int) -> list[RunHandle]:
    return [create_run(client, f"{prefix}-{i}")[0] for i in range(count)]


def route_exists(base_url: str, method: str, path: str) -> bool:
    """Whether the app documents `method path` in its OpenAPI schema."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        schema = httpx.get(base_url + "/schema/openapi.json", timeout=10).json()
        return method.lower() in schema.get("paths", {}).get(path, {})
    return False


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for a block; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
