"""`terragon serve --workers N`: one uvicorn worker process per core, each a full replica.

Workers share nothing in memory, so what must agree across them is made shared before they
start (`prepare_workers`, in the supervising process):

- the preview signing secret: a token one worker signs must verify in another. `serve` refuses
  to start without a configured one (CONTRACT §3), and every worker inherits it;
- Prometheus counters: each worker writes its counters to files in one directory and `/metrics`
  (answered by any worker) sums them (prometheus_client's multiprocess mode);
- logging: each worker configures the same level and format as the command line asked for.

Everything else already works across replicas: migrations take an advisory lock, each periodic
job makes itself unique with an advisory lock, the access cache single-flight lives in Valkey.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from litestar import Litestar

from terragon_ingest.log_config import configure_logging
from terragon_ingest.settings import Settings, get_settings, unsafe_secrets_message

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LOG_FORMAT_ENV = "TERRAGON_LOG_FORMAT"


def prepare_workers(settings: Settings, *, log_level: str, json_logs: bool) -> None:
    """Shared state for the workers, via the environment they inherit (call before spawning)."""
    metrics_dir = Path(settings.server.DATA_DIR) / "prometheus-multiproc"
    # Counters restart from zero with the server, as they do in one process.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(metrics_dir.resolve())
    os.environ["TERRAGON_LOG_LEVEL"] = log_level
    os.environ[_LOG_FORMAT_ENV] = "json" if json_logs else "console"


def create_worker_app() -> Litestar:
    """The app factory each worker imports (`uvicorn ... --factory`)."""
    from terragon_ingest.app import create_app

    settings = get_settings()
    # `serve` checked already; a worker started some other way (`uvicorn … --factory`) checks too.
    if problems := settings.unsafe_secrets():
        raise SystemExit(unsafe_secrets_message(problems))
    configure_logging(settings.server.LOG_LEVEL, json=os.environ.get(_LOG_FORMAT_ENV) != "console")
    return create_app(settings)
