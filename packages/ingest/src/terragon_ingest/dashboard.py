"""`terragon dashboard`, and the launcher of the Streamlit dashboard (`apps/dashboard`) as a child
process: `terragon dashboard` runs it in the foreground, `terragon up` next to the API. The dashboard never imports ingest;
it gets the archive (a directory, or `TERRAGON_ARCHIVE_URL` for a bucket, with the object store's
endpoint and `AWS_*` credentials of this environment) and `DATABASE_URL` through its environment."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import click
import structlog

from terragon_core.env import inherited_env
from terragon_ingest.archive import archive_dir_option, archive_url_option, with_archive
from terragon_ingest.kit.installation import installation
from terragon_ingest.kit.net import is_loopback
from terragon_ingest.log_config import relay_output, wait_relays
from terragon_ingest.settings import Settings
from terragon_ingest.stopping import die_with_parent

log = structlog.get_logger()


def dashboard_script(name: str = "server.py") -> Path:
    """`terragon_dashboard/server.py` (the page `app.py` behind its edge: host names, sign-in),
    found without importing the package."""
    spec = importlib.util.find_spec("terragon_dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException(
            "terragon-dashboard is not installed; run `uv sync` in the checkout"
        )
    return Path(next(iter(spec.submodule_search_locations))) / name


def _is_url(archive: Path | str) -> bool:
    return str(archive).startswith("s3://")


def dashboard_argv(host: str, port: int, archive_dir: Path | str) -> list[str]:
    """`archive_dir`: the archive's directory, or its `s3://` URL."""
    archive_arg = "archive-url" if _is_url(archive_dir) else "archive-dir"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(dashboard_script()),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # an operations page: no "Deploy" button or developer menu in its toolbar
        "--client.toolbarMode",
        "viewer",
        # no source watcher: after every script run it stats every imported module (pandas,
        # pyarrow, altair...), most of a cached run's time; an installed page is not edited live
        "--server.fileWatcherType",
        "none",
        "--",
        f"--{archive_arg}={archive_dir}",
    ]


_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM",
        "VIRTUAL_ENV", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
        # the archive in a bucket (issue 14): the endpoint and timeout of its reader
        "OBJECT_STORE_S3_ENDPOINT", "OBJECT_STORE_TIMEOUT",
        # uvicorn under Streamlit: the proxies whose X-Forwarded-For names the client (the
        # sign-in throttle counts per client; default 127.0.0.1)
        "FORWARDED_ALLOW_IPS",
    }
)  # fmt: skip
_ENV_PREFIXES = ("LC_", "STREAMLIT_", "TERRAGON_DASHBOARD_", "TERRAGON_ARCHIVE_", "AWS_")
"""What the dashboard process may inherit: its own settings, the archive's location and object
store credentials, and what any process needs. Never the service's secrets
(`TERRAGON_INTERNAL_TOKEN`, `TERRAGON_SIGNING_SECRET`, `GITHUB_WEBHOOK_SECRET`, ...): a
Streamlit page that raises can show its environment to whoever reaches the port."""


def dashboard_env(
    archive_dir: Path | str, database_url: str | None, data_dir: Path | None = None
) -> dict[str, str]:
    """`data_dir`: the installation's data directory (`TERRAGON_DATA_DIR`), which the commands the
    dashboard prints carry as `--data-dir` (it finds the database, the archive and the objects)."""
    env = inherited_env(_ENV_NAMES, _ENV_PREFIXES)
    if _is_url(archive_dir):
        env["TERRAGON_ARCHIVE_URL"] = str(archive_dir)
    else:
        env.pop("TERRAGON_ARCHIVE_URL", None)  # the directory given is the one to read
        env["TERRAGON_ARCHIVE_DIR"] = str(archive_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    if data_dir is not None:
        env["TERRAGON_DATA_DIR"] = str(data_dir.resolve())
    return env


def start_dashboard(
    host: str,
    port: int,
    archive_dir: Path | str,
    database_url: str | None,
    data_dir: Path | None = None,
    *,
    hosts: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start the dashboard in the background; stop it with `stop_dashboard`. `hosts`: the
    dashboard's `TERRAGON_DASHBOARD_HOSTS` (settings.dashboard.HOSTS), to warn when it is unset."""
    if not is_loopback(host) and not hosts:
        log.warning(
            "dashboard_host_names_unset",
            host=host,
            action=f"the dashboard answers only to the names {host}, localhost and 127.0.0.1 "
            "(any other Host gets 403): set TERRAGON_DASHBOARD_HOSTS to the names browsers use",
        )
    if not _is_url(archive_dir):
        Path(archive_dir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        dashboard_argv(host, port, archive_dir),
        env=dashboard_env(archive_dir, database_url, data_dir),
        # Streamlit's text, its uvicorn's lines and the page's JSON events, logged again here in
        # this process's format (piped: JSON lines, every one; a terminal: the console's)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
        # Out of our process group: a group SIGINT (Ctrl-C, a process manager) reaches `up`
        # alone, and `up` stops the dashboard once, in order.
        start_new_session=True,
    )
    _relays[process.pid] = relay_output(process, "dashboard")
    log.info("dashboard_started", pid=process.pid, url=f"http://{host}:{port}")
    return process


_relays: dict[int, list[threading.Thread]] = {}


def stop_dashboard(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)
    wait_relays(_relays.pop(process.pid, []))
    log.info("dashboard_stopped", pid=process.pid, returncode=process.returncode)


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, type=int)
@installation(database="optional")
@archive_dir_option
@archive_url_option
def dashboard(
    host: str,
    port: int,
    settings: Settings,
    archive_dir: Path | None,
    archive_url: str | None,
) -> None:
    """Serve the on-call dashboard (Streamlit) over the archive and the live hour in Postgres.

    SIGINT or SIGTERM stops it (Streamlit with it); a repeated signal during the stop is ignored.
    """
    from terragon_ingest.stopping import StopSignals

    url = settings.db.URL  # None: the archive alone, no live hour
    settings = with_archive(settings, archive_dir, archive_url)
    root = settings.archive.archive_url(settings.server.DATA_DIR)
    from terragon_ingest.log_config import announce

    announce(
        "dashboard_serving",
        f"dashboard on http://{host}:{port} (archive {root})",
        url=f"http://{host}:{port}",
        archive=str(root),
    )
    # The stop-once handlers of `up`: Streamlit runs in a session of its own (no group signal
    # reaches it), so only this stop ends it; SIGKILL of this process ends it by die_with_parent.
    stop = StopSignals().install()
    process = None
    try:
        process = start_dashboard(
            host, port, root, url, settings.server.DATA_DIR, hosts=settings.dashboard.HOSTS
        )
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.begin_without_signal()
        if process is not None:
            stop_dashboard(process)
        stop.finish()
    if stop.cause is None and process is not None and process.returncode:
        raise click.ClickException(
            f"the dashboard exited with {process.returncode} (its output is above)"
        )
