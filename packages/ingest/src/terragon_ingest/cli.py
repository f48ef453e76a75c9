"""The `terragon` command: run the system, migrate, and operate it.

    terragon up         embedded PostgreSQL + Valkey (when no URLs are set), migrate, serve
    terragon serve      serve against DATABASE_URL / VALKEY_URL
    terragon migrate    bring the schema to head

Domains add their own groups below (`quarantine`, `maintenance`, `archive`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import structlog

from terragon_core.env import env_var
from terragon_ingest.archive import commands as archive_commands
from terragon_ingest.daemon_events import commands as daemon_event_commands
from terragon_ingest.dashboard import dashboard as dashboard_command
from terragon_ingest.kit.installation import (
    UP_STATE_FILE,
    data_dir_option,
    database_url_option,
    resolve_database_url,
)
from terragon_ingest.kit.net import is_loopback
from terragon_ingest.log_config import (
    announce,
    configure_logging,
    log_stream,
    logs_to_terminal,
    on_output_closed,
    start_status_line,
    stop_status_line,
)
from terragon_ingest.runs import commands as run_commands
from terragon_ingest.settings import (
    ServerSettings,
    Settings,
    get_settings,
    unsafe_secrets_message,
)
from terragon_ingest.stopping import StopOnceServer, StopSignals, die_with_parent

log = structlog.get_logger()

EMBEDDED_DATABASE = "terragon"


def _settings_with(
    settings: Settings,
    *,
    db_url: str | None = None,
    valkey_url: str | None = None,
    data_dir: Path | None = None,
    public_url: str | None = None,
) -> Settings:
    db = dataclasses.replace(settings.db, URL=db_url) if db_url else settings.db
    vk = dataclasses.replace(settings.valkey, URL=valkey_url) if valkey_url else settings.valkey
    server = settings.server
    if data_dir is not None:
        server = dataclasses.replace(server, DATA_DIR=data_dir.resolve())
    if public_url is not None and not server.PUBLIC_URL:
        server = dataclasses.replace(server, PUBLIC_URL=public_url)
    return dataclasses.replace(settings, db=db, valkey=vk, server=server)


def _serve(
    settings: Settings,
    host: str,
    port: int,
    stop: StopSignals,
    workers: int = 1,
    on_server: Callable[[StopOnceServer], None] | None = None,
) -> bool:
    """Serve until stopped; False if the app never started (its start-up failed: the log says
    why). `on_server` gets the server before it starts (to stop it from another thread)."""
    import uvicorn

    from terragon_ingest.kit.http_protocol import raise_open_files_limit, server_options

    raise_open_files_limit(settings)
    options: dict[str, Any] = {**server_options(settings), "host": host, "port": port}
    if workers > 1:
        from terragon_ingest.workers import prepare_workers

        level, json_logs = _logging_options()
        prepare_workers(settings, log_level=level, json_logs=json_logs)
        # uvicorn supervises the workers (restarts a dead one; SIGTERM/SIGINT stop them all; it
        # only queues signals, so a repeated one cannot interrupt its stop).
        target = "terragon_ingest.workers:create_worker_app"
        uvicorn.run(target, factory=True, workers=workers, **options)
        return True
    from terragon_ingest.app import create_app

    server = StopOnceServer(uvicorn.Config(create_app(settings), **options), stop)
    if on_server is not None:
        on_server(server)
    server.run()
    return server.started


def refuse_unsafe_secrets(settings: Settings) -> None:
    """CONTRACT §3: outside `terragon up`, never serve on an unset, default or short secret."""
    problems = settings.unsafe_secrets()
    if problems:
        raise click.ClickException(unsafe_secrets_message(problems))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default=env_var(ServerSettings, "LOG_LEVEL").read,
    show_default="TERRAGON_LOG_LEVEL, else info",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default=env_var(ServerSettings, "LOG_FORMAT").read,
    help="(env TERRAGON_LOG_FORMAT) Default: console on a terminal, JSON otherwise. Logs go to "
    "stdout for up, serve and dashboard, to stderr for every other command (its stdout is the "
    "answer). In a terminal at info level, per-envelope and per-run events are one summary line every 10 s "
    "(--log-level debug shows each); JSON carries every event.",
)
def main(log_level: str, log_format: str | None) -> None:
    """terragon: the run-correlation plane (daemon event ingest, quarantine, preview access)."""
    ctx = click.get_current_context()
    stream = log_stream(ctx.invoked_subcommand)
    json_logs = (log_format == "json") if log_format else not logs_to_terminal(stream)
    ctx.meta["logging"] = (log_level, json_logs)
    configure_logging(log_level, json=json_logs, stream=stream)


def _logging_options() -> tuple[str, bool]:
    """(level, JSON?) as the command line chose them, for worker processes to repeat."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("logging", ("info", True)) if ctx else ("info", True)


_host = click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
_port = click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
_data_dir = data_dir_option(
    help="Embedded servers, object store and archive live here; up.json names the running "
    "servers for every other command. With --demo the default is .data-demo. Env "
    "TERRAGON_DATA_DIR."
)


@main.command()
@_host
@_port
@_data_dir
@click.option(
    "--dashboard-port",
    default=8501,
    show_default=True,
    type=int,
    help="Port of the on-call dashboard (Streamlit, on --host); 0 to not start it.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Also run a demo fleet of real daemons (bundle + fake agent): strict and legacy runs, "
    "stale daemons, missing endSha, oversized payloads; and write 30 days of made-up history "
    "into the archive so every chart has data at once. Uses its own data directory "
    "(.data-demo unless --data-dir names a new one) and embedded servers only.",
)
@click.option(
    "--provider",
    type=click.Choice(["local", "docker"]),
    default="local",
    show_default=True,
    help="With --demo: `docker` runs every other demo sandbox in a container (an image made "
    "from this machine's files, no registry; needs a running dockerd, else all stay local).",
)
def up(
    host: str, port: int, data_dir: Path, dashboard_port: int, demo: bool, provider: str
) -> None:
    """Run the whole system on this machine.

    With no DATABASE_URL / VALKEY_URL set, starts an embedded PostgreSQL and Valkey under
    DATA_DIR, migrates, and serves the API. Previews are served on
    http://{previewSessionId}.preview.localhost:PORT (TERRAGON_PREVIEW_ORIGIN), and upstreams on
    this machine are allowed. Ctrl-C or SIGTERM stops everything it started; a repeated signal
    during the stop is ignored. Runs on development secrets unless TERRAGON_INTERNAL_TOKEN,
    GITHUB_WEBHOOK_SECRET, TERRAGON_SIGNING_SECRET and TERRAGON_METRICS_TOKEN are set: do not
    expose it. /metrics answers this machine (loopback peers) without a token unless
    TERRAGON_METRICS_TOKEN is set.
    """
    from terragon_ingest.dashboard import start_dashboard, stop_dashboard
    from terragon_ingest.embedded import EmbeddedPostgres, EmbeddedValkey
    from terragon_ingest.preview import origin as preview_origin

    settings = get_settings()
    history: DemoHistory | None = None
    if demo:
        data_dir = _demo_data_dir(settings, data_dir)
        history = DemoHistory(data_dir, settings.archive.archive_dir(data_dir.resolve()))
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    started: list[EmbeddedPostgres | EmbeddedValkey] = []
    dashboard: subprocess.Popen[bytes] | None = None
    fleet: subprocess.Popen[bytes] | None = None
    state_file = data_dir / UP_STATE_FILE
    stop = StopSignals().install()
    up_banner: UpBanner | None = None
    output = _OutputClosed(stop)
    served = True
    try:
        db_url = settings.db.URL
        if not db_url:
            pg = EmbeddedPostgres(data_dir, fast=settings.db.EMBEDDED_FAST)
            started.append(pg)
            pg.start()
            pg.ensure_database(EMBEDDED_DATABASE)
            db_url = pg.url(EMBEDDED_DATABASE)
        valkey_url = settings.valkey.URL
        if not valkey_url:
            vk = EmbeddedValkey(data_dir)
            started.append(vk)
            valkey_url = vk.start()
        public = f"http://{host}:{port}"
        effective = _settings_with(
            settings, db_url=db_url, valkey_url=valkey_url, data_dir=data_dir, public_url=public
        )
        effective = preview_origin.for_this_machine(effective)
        state_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "databaseUrl": db_url,
                    "valkeyUrl": valkey_url,
                    "api": public,
                }
            )
        )
        if history is not None:
            history.wait()
        lines = {
            "api": public,
            "openapi": f"{public}/schema",
            "metrics": f"{public}/metrics",
            "previews": preview_origin.banner(effective, port),
            "postgres": db_url,
            "valkey": valkey_url,
            "data_dir": str(data_dir),
            "secrets": _secrets_line(effective, host),
        }
        if dashboard_port:
            archive = effective.archive.archive_url(data_dir)
            dashboard = start_dashboard(
                host, dashboard_port, archive, db_url, data_dir, hosts=effective.dashboard.HOSTS
            )
            lines["dashboard"] = f"http://{host}:{dashboard_port}"
            lines["dashboard_access"] = _dashboard_access(effective, host)
        if demo:
            preview_port = free_loopback_port()
            fleet = start_demo_fleet(public, data_dir, effective, preview_port, provider)
            lines["demo_preview"] = f"http://127.0.0.1:{preview_port}/"
        up_banner = UpBanner(_probe_url(host, port), lines, stop)
        up_banner.start()
        if not output.closed:
            served = _serve(effective, host, port, stop, on_server=output.serving)
    except KeyboardInterrupt:
        pass
    finally:
        # From here on a signal is only noted: nothing may cut the stopping of the servers.
        stop.begin_without_signal()
        if up_banner is not None:
            up_banner.cancel()
        stop_status_line()
        failure = up_banner.failure if up_banner is not None else None
        cause = failure or output.cause or stop.cause
        announce("terragon_stopping", f"terragon stopping ({cause or 'exit'})...", cause=cause)
        steps: list[tuple[str, Callable[[], None]]] = []
        if history is not None:
            steps.append(("demo history", history.stop))
        if fleet is not None:
            steps.append(("demo fleet", lambda f=fleet: stop_demo_fleet(f)))
        if dashboard is not None:
            steps.append(("dashboard", lambda d=dashboard: stop_dashboard(d)))
        steps += [(type(server).__name__, server.stop) for server in reversed(started)]
        steps.append(("state file", lambda: state_file.unlink(missing_ok=True)))
        failed = _run_stop_steps(steps, stop)
        announce(
            "terragon_stopped",
            "terragon stopped; embedded servers are down."
            if not failed
            else f"terragon stopped, but could not stop: {', '.join(failed)} (see the log)",
            failed=failed,
        )
        stop.finish()
    if failure or (not served and stop.cause is None and output.cause is None):
        raise SystemExit(1)  # the log said why (the API never answered, or its start failed)


READY_TIMEOUT_SECONDS = 180.0
"""How long `up` waits for its API to answer before it gives up and stops (a first start on a
loaded machine migrates in seconds; a real database's migrations may take longer)."""


class UpBanner:
    """ "terragon is up", said once the API answers (`/readyz`: PostgreSQL and Valkey reachable
    through it), from a thread while the main thread serves; then the status line. If the API
    never answers within `READY_TIMEOUT_SECONDS`, a clear error and a stop instead."""

    def __init__(self, probe: str, lines: dict[str, str], stop: StopSignals) -> None:
        import threading

        self.probe, self.lines, self.stop = probe, lines, stop
        self.failure: str | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="up-banner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        self._thread.join(5)

    def _run(self) -> None:
        import time

        began = time.monotonic()
        while not _answers(self.probe):
            if self._cancelled.wait(0.25):
                return
            waited = time.monotonic() - began
            if waited > READY_TIMEOUT_SECONDS:
                self.failure = f"the API did not answer within {READY_TIMEOUT_SECONDS:.0f} s"
                log.error(
                    "api_not_answering",
                    url=self.probe,
                    waited_seconds=round(waited),
                    action="see the log lines above (migrations, the database, the port); "
                    "terragon up stops",
                )
                _request_stop()
                return
        if self._cancelled.is_set():
            return
        self.lines["ready_after_seconds"] = f"{time.monotonic() - began:.1f}"
        announce("terragon_up", banner_text(self.lines), **self.lines)
        status = f"  API {self.lines['api']}"
        if "dashboard" in self.lines:
            status += f" · dashboard {self.lines['dashboard']}"
        if "demo_preview" in self.lines:
            status += f" · demo preview {self.lines['demo_preview']}"
        start_status_line(status + " · Ctrl-C stops")


def banner_text(lines: dict[str, str]) -> str:
    """The banner a person reads (each line fitted to the terminal when printed)."""
    api = lines["api"]
    text = [
        "",
        f"terragon is up (the API answered after {lines['ready_after_seconds']} s)",
        f"  API        {api}   (OpenAPI: {api}/schema, metrics: {api}/metrics)",
    ]
    if "dashboard" in lines:
        text.append(f"  Dashboard  {lines['dashboard']}   ({lines['dashboard_access']})")
    if "demo_preview" in lines:
        text.append(
            f"  Preview    {lines['demo_preview']}   (the demo's sandbox 0: a new session at "
            "each visit)"
        )
    text += [
        f"  Previews   {lines['previews']}",
        f"  Postgres   {lines['postgres']}",
        f"  Valkey     {lines['valkey']}",
        f"  data dir   {lines['data_dir']}",
        f"  secrets    {lines['secrets']}",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(text)


def _probe_url(host: str, port: int) -> str:
    """Where `up` asks whether its API answers: the bound address, or loopback for a wildcard."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.strip("[]") or "0.0.0.0")  # noqa: S104 (a test, not a bind)
    except ValueError:
        return f"http://{host}:{port}/readyz"  # a host name
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{port}/readyz"


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    # no proxy: the API is on this machine, whatever HTTP_PROXY says
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _request_stop() -> None:
    """Stop `up` from another thread: the first SIGTERM's path (`StopSignals`, uvicorn's
    graceful stop), whether or not the server runs yet."""
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


class _OutputClosed:
    """`up`'s log reader went away (`terragon up | head -50`): stop, as cleanly as for a
    signal; the rest of the output goes to /dev/null (`log_config`)."""

    def __init__(self, stop: StopSignals) -> None:
        self.closed = False
        self.cause: str | None = None
        self._server: StopOnceServer | None = None
        on_output_closed(self._closed)

    def serving(self, server: StopOnceServer) -> None:
        self._server = server
        if self.closed:
            server.should_exit = True

    def _closed(self) -> None:
        # runs in whichever thread wrote: only flags (a signal handler may hold the log's lock)
        self.closed, self.cause = True, "its output was closed"
        if self._server is not None:
            self._server.should_exit = True


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the demo's preview link, named in the banner
    before the fleet binds it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _demo_data_dir(settings: Settings, data_dir: Path) -> Path:
    """`--demo`'s data directory: its own (never the default `.data`), new or already a demo
    directory, on embedded servers only, so demo data never lands in a real installation."""
    from terragon_ingest import demo

    ctx = click.get_current_context()
    if ctx.get_parameter_source("data_dir") is click.core.ParameterSource.DEFAULT:
        data_dir = demo.DEMO_DATA_DIR
    if settings.db.URL or settings.valkey.URL:
        raise click.ClickException(
            "--demo runs on embedded servers of its own: unset DATABASE_URL and VALKEY_URL "
            "(demo traffic must not land in a real database)"
        )
    try:
        demo.find_checkout()  # before anything is claimed or started
        demo.claim_demo_dir(data_dir.resolve())
        demo.check_demo_archive(
            data_dir.resolve(), settings.archive.archive_dir(data_dir.resolve())
        )
    except (demo.NotADemoDirectory, demo.NoCheckout) as exc:
        raise click.ClickException(str(exc)) from exc
    return data_dir


class DemoHistory:
    """Writes the demo history (`python -m tools.demo.history`, a child run from the checkout)
    while the servers start (it takes seconds); `wait` before the dashboard opens the archive."""

    def __init__(self, data_dir: Path, archive_dir: Path) -> None:
        from terragon_ingest.demo import find_checkout
        from terragon_ingest.log_config import relay_output

        log.info("demo_history_writing", days=30, archive=str(archive_dir))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.demo.history",
                "--data-dir",
                str(data_dir.resolve()),
                "--archive",
                str(archive_dir),
                "--log-format",
                "json",
            ],
            cwd=find_checkout(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            start_new_session=True,  # like the fleet: `up` alone gets the group's signals
        )
        self.relays = relay_output(self.process, "demo")

    def wait(self) -> None:
        from terragon_ingest.log_config import wait_relays

        code = self.process.wait()
        wait_relays(self.relays)
        if code != 0:
            log.error("demo_history_failed", exit_code=code)
            raise click.ClickException(
                f"demo history could not be written (exit {code}; its log lines are above)"
            )

    def stop(self) -> None:
        """On `up`'s way out: a history still being written is cut short."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _dashboard_access(settings: Settings, host: str) -> str:
    """The banner's word on who can open the dashboard (`TERRAGON_DASHBOARD_AUTH`)."""
    if settings.dashboard.AUTH:
        return "sign-in required (TERRAGON_DASHBOARD_AUTH)"
    if is_loopback(host):
        return f"open, no sign-in: served on {host} only, so only this machine reaches it"
    log.warning(
        "dashboard_exposed_without_sign_in",
        host=host,
        action="set TERRAGON_DASHBOARD_AUTH=password and TERRAGON_DASHBOARD_PASSWORD, or bind "
        "--host 127.0.0.1",
    )
    return "open, no sign-in, payload prefixes hidden: set TERRAGON_DASHBOARD_AUTH"


def _secrets_line(settings: Settings, host: str) -> str:
    """The banner's word on secrets: `up` runs on development defaults unless they are set."""
    problems = settings.unsafe_secrets()
    if not problems:
        return "set from the environment"
    if not is_loopback(host):
        log.warning(
            "up_exposed_with_development_secrets",
            host=host,
            problems=problems,
            action="bind --host 127.0.0.1, or set the secrets (see `uv run terragon serve --help`)",
        )
    token = settings.server.INTERNAL_TOKEN
    return f"development secrets: do not expose this server (internal token: {token})"


def _run_stop_steps(steps: list[tuple[str, Callable[[], None]]], stop: StopSignals) -> list[str]:
    """Run every step even when one fails (a failure must not leave the others running)."""
    failed = []
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            failed.append(name)
            log.error("stop_step_failed", part=name, error=repr(exc), exc_info=exc)
        stop.report()
    return failed


def start_demo_fleet(
    api: str, data_dir: Path, settings: Settings, preview_port: int = 0, provider: str = "local"
) -> subprocess.Popen[bytes]:
    """`python -m tools.demo` from the source checkout (`demo.find_checkout`), as a child we stop
    on every exit path; its JSON log lines are read and logged again here (`relay_output`)."""
    from terragon_ingest.demo import find_checkout
    from terragon_ingest.log_config import relay_output

    root = find_checkout()
    socket_dir = settings.sandbox.socket_dir(data_dir)
    fleet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.demo",
            "--api",
            api,
            "--data-dir",
            str(data_dir / "demo"),
            "--socket-dir",
            str(socket_dir),
            "--provider",
            provider,
            "--preview-port",
            str(preview_port),
            "--log-format",
            "json",
        ],
        cwd=root,
        # The token goes by environment: a command line is readable by every local user.
        env=os.environ | {"TERRAGON_INTERNAL_TOKEN": settings.server.INTERNAL_TOKEN},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
        start_new_session=True,  # like the dashboard: `up` alone gets the group's signals
    )
    _relays[fleet.pid] = relay_output(fleet, "demo")
    return fleet


_relays: dict[int, list[threading.Thread]] = {}


def stop_demo_fleet(fleet: subprocess.Popen[bytes]) -> None:
    from terragon_ingest.log_config import wait_relays

    if fleet.poll() is None:
        fleet.terminate()
        try:
            fleet.wait(30)
        except subprocess.TimeoutExpired:
            fleet.kill()
            fleet.wait(5)
    wait_relays(_relays.pop(fleet.pid, []))


@main.command()
@_host
@_port
@data_dir_option(
    help="Where the object store (when OBJECT_STORE_URL is unset), the archive (when "
    "TERRAGON_ARCHIVE_URL is unset) and local sandbox sockets live. Env TERRAGON_DATA_DIR."
)
@click.option(
    "--workers",
    default=env_var(ServerSettings, "WORKERS").read,
    show_default="TERRAGON_WORKERS, else 1",
    type=click.IntRange(min=1),
    help="Worker processes (env TERRAGON_WORKERS); one per core is the usual choice. With more "
    "than one, /metrics sums every worker and every worker shares the configured secrets.",
)
def serve(host: str, port: int, data_dir: Path, workers: int) -> None:
    """Serve the API against DATABASE_URL and VALKEY_URL (production; migrates at start).

    Refuses to start unless TERRAGON_INTERNAL_TOKEN, GITHUB_WEBHOOK_SECRET,
    TERRAGON_SIGNING_SECRET and TERRAGON_METRICS_TOKEN are each set to at least 32 bytes that are
    not a development default (and not one another). /metrics answers only
    `Authorization: Bearer $TERRAGON_METRICS_TOKEN` (its labels name tenants).
    """
    settings = _settings_with(get_settings(), data_dir=data_dir)
    refuse_unsafe_secrets(settings)
    stop = StopSignals().install()
    start_status_line(f"  API http://{host}:{port} · Ctrl-C stops")
    try:
        _serve(settings, host, port, stop, workers)
    except KeyboardInterrupt:
        pass
    finally:
        stop.begin_without_signal()
        stop.finish()


@main.command()
@data_dir_option()
@database_url_option(
    help="PostgreSQL URL (env DATABASE_URL). Default: the one the --data-dir's `terragon up` "
    "runs; with --write-schema and no URL, a throwaway embedded PostgreSQL."
)
@click.option(
    "--write-schema",
    is_flag=True,
    help="Then write db/schema.sql, the readable snapshot of the schema at head (commit it with "
    "the migration or function file that changed it).",
)
def migrate(data_dir: Path, database_url: str | None, write_schema: bool) -> None:
    """Apply pending schema migrations and changed function files (safe to run from several
    processes at once)."""
    if database_url is None and write_schema:  # the snapshot is of a schema built from nothing
        _write_schema_from_scratch()
        return
    database_url = resolve_database_url(database_url, data_dir)
    from terragon_ingest.app import run_migrations

    applied = run_migrations(database_url)
    click.echo(f"applied {len(applied)} migration(s) and function file(s); the schema is at head")
    if write_schema:
        _write_schema(database_url)


def _write_schema(database_url: str) -> None:
    from terragon_ingest.db.schema import write_snapshot

    click.echo(f"wrote {write_snapshot(database_url)}")


def _write_schema_from_scratch() -> None:
    import tempfile

    from terragon_ingest.app import run_migrations
    from terragon_ingest.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="terragon-schema-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", fast=get_settings().db.EMBEDDED_FAST)
        url = server.start()
        try:
            run_migrations(url)
            _write_schema(url)
        finally:
            server.stop()


main.add_command(archive_commands.archive)
main.add_command(archive_commands.retention)
main.add_command(dashboard_command)


main.add_command(daemon_event_commands.quarantine)
main.add_command(daemon_event_commands.maintenance)
main.add_command(run_commands.tokens)


if __name__ == "__main__":  # pragma: no cover
    main()
