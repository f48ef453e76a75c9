"""Session fixtures: real PostgreSQL and Valkey (embedded, or external via env), one database
per test cloned from a migrated template, and a flushed Valkey per test.

Set TERRAGON_TEST_DATABASE_URL / TERRAGON_TEST_VALKEY_URL to use external servers instead.
S3: a moto server (`tools/s3_server.py`), or the bucket of TERRAGON_TEST_S3_URL (with
TERRAGON_TEST_S3_ENDPOINT and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest
import structlog
import valkey

from terragon_ingest import log_config
from terragon_ingest.log_config import configure_logging
from tools.s3_server import S3Target

os.environ.setdefault("TERRAGON_ENV", "test")
os.environ.setdefault("TERRAGON_INTERNAL_TOKEN", "test-internal-token")
os.environ.setdefault("TERRAGON_METRICS_TOKEN", "test-metrics-token")
os.environ.setdefault("TERRAGON_BACKGROUND_JOBS", "false")

INTERNAL_TOKEN = os.environ["TERRAGON_INTERNAL_TOKEN"]
METRICS_TOKEN = os.environ["TERRAGON_METRICS_TOKEN"]

# Log as production does (JSON lines): the dev console renderer stats files to pretty-print
# tracebacks, which blockbuster rightly flags on the event loop and which hides the real error.
log_config.CACHE_LOGGERS = False
configure_logging("info", json=True)


def _with_database(url: str, database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture(name="services_dir", scope="session")
def fx_services_dir() -> Iterator[Path]:
    # A directory of our own (not pytest's tmp_path: concurrent sessions reset its parent to 0700).
    path = Path(tempfile.mkdtemp(prefix="terragon-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="pg_admin_url", scope="session")
def fx_pg_admin_url(services_dir: Path) -> Iterator[str]:
    external = os.environ.get("TERRAGON_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from terragon_ingest.embedded import EmbeddedPostgres
    from terragon_ingest.settings import DatabaseSettings

    server = EmbeddedPostgres(services_dir / "pg-server", fast=DatabaseSettings().EMBEDDED_FAST)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(name="template_database", scope="session")
def fx_template_database(pg_admin_url: str) -> Iterator[str]:
    """A database migrated once per session; every test clones it (`CREATE DATABASE … TEMPLATE`)."""
    from terragon_ingest.app import run_migrations

    name = f"terragon_template_{os.getpid()}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    run_migrations(_with_database(pg_admin_url, name))
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture(name="database_url")
def fx_database_url(pg_admin_url: str, template_database: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')  # type: ignore[arg-type]
    yield _with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture(name="empty_url")
def fx_empty_url(pg_admin_url: str) -> Iterator[str]:
    """A database with nothing in it: for the migration runner and the schema snapshot."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    yield _with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def _worker_database(url: str) -> str:
    """An external Valkey's database of this pytest-xdist worker (`gw3` -> db 3): each test
    flushes its database, and parallel workers must not flush each other's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":  # the database is a query parameter there
        return parts._replace(query=f"db={index}").geturl()
    return parts._replace(path=f"/{index}").geturl()


@pytest.fixture(name="valkey_server_url", scope="session")
def fx_valkey_server_url(services_dir: Path) -> Iterator[str]:
    external = os.environ.get("TERRAGON_TEST_VALKEY_URL")
    if external:
        yield _worker_database(external)
        return
    from terragon_ingest.embedded import EmbeddedValkey

    server = EmbeddedValkey(services_dir / "valkey-server")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(name="valkey_url")
def fx_valkey_url(valkey_server_url: str) -> str:
    client = valkey.from_url(valkey_server_url)
    client.flushdb()
    client.close()
    return valkey_server_url


@pytest.fixture(name="s3_bucket", scope="session")
def fx_s3_bucket(services_dir: Path) -> Iterator[S3Target]:
    """A real S3 API: the bucket of TERRAGON_TEST_S3_URL, else a moto server started here."""
    from tools.s3_server import external_target, start_bucket

    external = external_target()
    if external is not None:
        yield external
        return
    server, target = start_bucket(services_dir)
    try:
        yield target
    finally:
        server.stop()


@pytest.fixture(name="s3")
def fx_s3(s3_bucket: S3Target, monkeypatch: pytest.MonkeyPatch) -> S3Target:
    """A prefix of this test's own in the bucket, and the environment that reaches it (set for
    this test: settings and child processes read the endpoint and credentials from it)."""
    from tools.s3_server import unique_prefix

    target = s3_bucket.child(unique_prefix())
    for name, value in target.env().items():
        monkeypatch.setenv(name, value)
    return target


@pytest.fixture(name="settings")
def fx_settings(database_url: str, valkey_url: str, tmp_path: Path):
    from terragon_ingest.settings import Settings
    from tests.fixtures.settings import settings_for

    settings: Settings = settings_for(database_url, valkey_url, tmp_path)
    return settings


@pytest.fixture(name="app")
def fx_app(settings):
    from terragon_ingest.app import create_app

    return create_app(settings)


def _logging_now() -> tuple[object, ...]:
    config = structlog.get_config()
    return (*config["processors"], config["wrapper_class"], config["logger_factory"])


_SESSION_LOGGING = [_logging_now()]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that reconfigures logging (a command's level or console format) leaves the
    session's JSON lines at info behind it: a later test's `capture_logs` depends on them."""
    yield
    if _logging_now() != _SESSION_LOGGING[0]:
        configure_logging("info", json=True)
        _SESSION_LOGGING[0] = _logging_now()


@pytest.fixture(autouse=True)
def _blockbuster() -> Iterator[None]:
    """Fail any test whose async code makes a blocking call on the event loop."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["terragon_ingest", "terragon_core"]) as bb:
        # Formatting the traceback of a 500 reads source lines (linecache): allowed, once per file.
        for name in ("os.stat", "io.open", "io.BufferedReader.read", "io.TextIOWrapper.read"):
            if name in bb.functions:
                bb.functions[name].can_block_in("linecache.py", {"updatecache", "checkcache"})
                bb.functions[name].can_block_in("tokenize.py", {"open"})
        yield


@pytest.fixture(name="cli")
def fx_cli(database_url: str, valkey_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`await cli("quarantine", "show", ...)`: a `terragon` command run in this process against
    the test's database, Valkey and data directory (the app's local object store); its stdout."""
    import asyncio

    from terragon_ingest.settings import get_settings
    from tests.fixtures.processes import invoke_in_process

    monkeypatch.setenv("VALKEY_URL", valkey_url)
    monkeypatch.setenv("TERRAGON_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()

    async def invoke(*args: str) -> str:
        result = await asyncio.to_thread(invoke_in_process, [*args, "--database-url", database_url])
        assert result.exit_code == 0, result.output
        return result.stdout

    yield invoke
    get_settings.cache_clear()


@pytest.fixture(name="client")
async def fx_client(app) -> AsyncIterator[object]:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app) as client:
        client.headers["Authorization"] = f"Bearer {INTERNAL_TOKEN}"
        yield client
