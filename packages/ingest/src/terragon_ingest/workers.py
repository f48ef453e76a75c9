"""`terragon serve --workers N`: one uvicorn worker process per core, each a full replica.

Workers share nothing in memory, so what must agree across them is made shared before they
start (`prepare_workers`, in the supervising process):

- the preview signing secret: a token one worker signs must verify in another. `serve` refuses
  to start without a configured one (CONTRACT §3), and every worker inherits it;
- Prometheus counters: each worker writes its counters to files in one directory and `/metrics`
  (answered by any worker) sums them (prometheus_client's multiprocess mode);
- logging: each worker configures the same level and format as the command line asked for.

A worker leaves the supervisor's process group: a signal to the group (Ctrl-C, `uv run`, a process
manager) reaches the supervisor alone, which stops the workers with SIGTERM. A worker that stopped
on its own would be seen dead and restarted in the middle of the stop (uvicorn checks its workers
before it reads a queued signal). It dies with the supervisor (PDEATHSIG) instead.

Everything else already works across replicas: migrations take an advisory lock, each periodic
job runs once per time slot across all of them (a `job_slot` claim, lifecycle/scheduler.py) under
its advisory lock, the access cache single-flight lives in Valkey.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from pathlib import Path

from litestar import Litestar

from terragon_core.env import env_var
from terragon_ingest.kit.installation import DATA_DIR_ENV
from terragon_ingest.log_config import configure_logging, log_stream, start_status_line
from terragon_ingest.settings import (
    ServerSettings,
    Settings,
    get_settings,
    unsafe_secrets_message,
)
from terragon_ingest.stopping import die_with_parent

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LOG_LEVEL_ENV = env_var(ServerSettings, "LOG_LEVEL").name
_LOG_FORMAT_ENV = env_var(ServerSettings, "LOG_FORMAT").name


def prepare_workers(settings: Settings, *, log_level: str, json_logs: bool) -> None:
    """Shared state for the workers, via the environment they inherit (call before spawning)."""
    metrics_dir = Path(settings.server.DATA_DIR) / "prometheus-multiproc"
    # Counters restart from zero with the server, as they do in one process.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(metrics_dir.resolve())
    os.environ[DATA_DIR_ENV] = str(settings.server.DATA_DIR)  # `serve --data-dir` reaches them
    os.environ[_LOG_LEVEL_ENV] = log_level
    os.environ[_LOG_FORMAT_ENV] = "json" if json_logs else "console"


def create_worker_app() -> Litestar:
    """The app factory each worker imports (`uvicorn ... --factory`)."""
    from terragon_ingest.app import create_app

    _leave_the_supervisors_group()
    settings = get_settings()
    # `serve` checked already; a worker started some other way (`uvicorn … --factory`) checks too.
    if problems := settings.unsafe_secrets():
        raise SystemExit(unsafe_secrets_message(problems))
    configure_logging(
        settings.server.LOG_LEVEL,
        json=settings.server.LOG_FORMAT != "console",
        stream=log_stream("serve"),
    )
    # in a terminal, each worker prints the summary of the envelopes it decided (no-op in JSON)
    start_status_line(f"  worker {os.getpid()} of {settings.server.PUBLIC_URL or 'terragon serve'}")
    return create_app(settings)


def _leave_the_supervisors_group() -> None:
    """In a worker of `serve --workers N` (a spawned child): own process group, die with parent."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None or sys.platform != "linux":
        return  # not under the supervisor (`uvicorn … --factory` alone): keep the terminal's signals
    os.setpgid(0, 0)
    die_with_parent()
    if os.getppid() != supervisor.pid:  # it died before PDEATHSIG was armed
        raise SystemExit("the serve supervisor is gone; not starting a worker without it")
