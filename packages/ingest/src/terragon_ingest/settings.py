"""One settings object for the ingest service, read from the environment.

Groups mirror the parts of the system. Every field is declared with `terragon_core.env.setting`
(name, type, default, what it does); `docs/configuration.md`'s table and `.env.example` are
generated from these declarations (`uv run python -m tools.settings_table --write`). This module
is the service's only reader of the environment. Deeper modules never import
`get_settings()`: the composition root (`app.create_app`) and the CLI pass settings down.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from terragon_core import (
    PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS,
    RUN_MAX_BYTES_PER_MINUTE,
    RUN_MAX_MESSAGES_PER_MINUTE,
)
from terragon_core.bucket_settings import BucketSettings
from terragon_core.dashboard_access import DashboardAccessSettings
from terragon_core.env import EnvVar, env_var, setting

DEV_INTERNAL_TOKEN = "dev-internal-token"
"""`terragon up`'s internal bearer token when none is set (development only)."""
DEV_WEBHOOK_SECRET = "dev-webhook-secret"
"""`terragon up`'s GitHub webhook secret when none is set (development only)."""
DEV_METRICS_TOKEN = "dev-metrics-token"
"""`terragon up`'s `/metrics` token when none is set: it never authenticates; on it `/metrics`
answers loopback peers without a token (development only; CONTRACT §3)."""
DEV_SIGNING_SECRET = secrets.token_hex(32)
"""`terragon up`'s preview signing key when none is set: random per process (development only)."""
MIN_SECRET_BYTES = 32
"""CONTRACT §3: outside `terragon up`, every secret is at least this long."""
MAKE_SECRET_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
"""What the refusal to start on an unsafe secret tells the operator to run."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    URL: str | None = setting(
        "DATABASE_URL",
        "url",
        None,
        "PostgreSQL URL. Unset → `uv run terragon up` starts an embedded server. May name a "
        "primary and its standbys (`postgresql://u@h1:5432,h2:5432/db?target_session_attrs="
        "read-write`): the service connects to whichever is primary, also after a failover.",
        shown_default="unset → embedded",
    )
    POOL_MAX: int = setting(
        "TERRAGON_DB_POOL_MAX", "int", 16, "Upper bound of the connection pool per worker process."
    )
    # Defaults to the max, so no connection is ever opened under load (the daemon-event hot path
    # would otherwise pay a connect, ~ms, exactly when it is busiest).
    POOL_MIN: int = setting(
        "TERRAGON_DB_POOL_MIN",
        "int",
        16,
        "Connections opened at start and kept open per worker process (capped at the max).",
        shown_default="= `TERRAGON_DB_POOL_MAX`",
        read=lambda env: _POOL_MIN.read(env) if _POOL_MIN.raw(env) else _POOL_MAX.read(env),
    )
    CONNECT_TIMEOUT: float = setting(
        "TERRAGON_DB_CONNECT_TIMEOUT",
        "float",
        5.0,
        "Seconds to wait for a pooled connection before answering 503; also bounds opening one "
        "(over every host of `DATABASE_URL`, unless it sets `connect_timeout`).",
    )
    # A connection option (`-c statement_timeout`): it costs no round trip per statement, where a
    # `SET LOCAL` needs a transaction around each. The periodic jobs lift it on their own
    # connection (`db.unbounded`). Why: docs/performance.md "Statement timeout".
    STATEMENT_TIMEOUT: float = setting(
        "TERRAGON_DB_STATEMENT_TIMEOUT",
        "float",
        10.0,
        "Seconds any statement of the service's pool may run (every ingest statement; over → 503 "
        "`unavailable` for that envelope only, the daemon retries). 0 = no bound.",
    )
    EMBEDDED_FAST: bool = setting(
        "TERRAGON_EMBEDDED_PG_FAST",
        "bool",
        False,
        "The embedded PostgreSQL of `uv run terragon up` (and of the tests) runs with `fsync` and "
        "`synchronous_commit` off: faster, and a machine crash can lose or corrupt its data. "
        "For throwaway data only.",
    )


_POOL_MAX = env_var(DatabaseSettings, "POOL_MAX")
_POOL_MIN = env_var(DatabaseSettings, "POOL_MIN")


@dataclass(frozen=True, slots=True)
class ValkeySettings:
    URL: str | None = setting(
        "VALKEY_URL",
        "url",
        None,
        "Valkey/Redis URL. Unset → `uv run terragon up` starts an embedded server.",
        shown_default="unset → embedded",
    )
    TIMEOUT: float = setting(
        "TERRAGON_VALKEY_TIMEOUT",
        "float",
        0.5,
        "Seconds per Valkey call; past it the preview access paths fail closed (503).",
    )


@dataclass(frozen=True, slots=True)
class ObjectStoreSettings(BucketSettings):
    """The object store: where payloads go (`URL`), and how a bucket is reached (the shared
    `BucketSettings`: endpoint, timeout, region)."""

    URL: str | None = setting(
        "OBJECT_STORE_URL",
        "url",
        None,
        "Where oversized quarantine payloads go: `s3://bucket/prefix` (S3/R2), `file:///dir` or "
        "a local directory.",
        shown_default="`<data-dir>/objects`",
    )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    ENV: str = setting(
        "TERRAGON_ENV", "str", "dev", "Environment name; part of every repo-access cache key."
    )
    INTERNAL_TOKEN: str = setting(
        "TERRAGON_INTERNAL_TOKEN",
        "str",
        DEV_INTERNAL_TOKEN,
        "Bearer token for `/api/internal/*`. **`serve` requires it** (≥ 32 bytes).",
        shown_default=f"`{DEV_INTERNAL_TOKEN}`, under `up` only",
        secret=True,
    )
    METRICS_TOKEN: str = setting(
        "TERRAGON_METRICS_TOKEN",
        "str",
        DEV_METRICS_TOKEN,
        "Bearer token for `/metrics` (its labels name every tenant's repo and user), the "
        "Prometheus scraper's. **`serve` requires it** (≥ 32 bytes, its own value); unset under "
        "`up`, `/metrics` answers loopback peers without one.",
        shown_default="unset, under `up` only",
        secret=True,
    )
    PUBLIC_URL: str | None = setting(
        "TERRAGON_PUBLIC_URL",
        "url",
        None,
        "Base URL daemons post to (`ingestUrl` in the start message).",
        shown_default="`http://host:port`",
    )
    DATA_DIR: Path = setting(
        "TERRAGON_DATA_DIR",
        "path",
        Path(".data"),
        "The installation: embedded servers, local object store, archive, `local` sandbox "
        "sockets (`--data-dir` wins).",
        read=lambda env: Path(_DATA_DIR.read(env)).resolve(),
    )
    MAX_BODY_BYTES: int = setting(
        "TERRAGON_MAX_BODY_BYTES",
        "int",
        4 * 1024 * 1024,
        "Daemon-event body cap; larger bodies answer 413.",
        shown_default="4 MiB",
    )
    WEBHOOK_MAX_BODY_BYTES: int = setting(
        "TERRAGON_WEBHOOK_MAX_BODY_BYTES",
        "int",
        1024 * 1024,
        "GitHub webhook body cap; larger bodies answer 413 before the signature is looked at.",
        shown_default="1 MiB",
    )
    MAX_CONNECTIONS: int = setting(
        "TERRAGON_MAX_CONNECTIONS",
        "int",
        1000,
        "Open connections per process (each worker); more are answered 503 and closed at once, "
        "never queued.",
    )
    HEADER_TIMEOUT: float = setting(
        "TERRAGON_HEADER_TIMEOUT_SECONDS",
        "float",
        10.0,
        "A request's headers must be complete this long after its first byte (or after the "
        "connection opened), else 408 and the connection is closed.",
    )
    BODY_TIMEOUT: float = setting(
        "TERRAGON_BODY_TIMEOUT_SECONDS",
        "float",
        10.0,
        "A request body must make progress at least this often while the service waits for it, "
        "else 408 (or a close, once an answer has started).",
    )
    KEEP_ALIVE_TIMEOUT: float = setting(
        "TERRAGON_KEEP_ALIVE_SECONDS",
        "float",
        5.0,
        "An idle connection (kept alive, or new and silent) is closed after this long.",
    )
    BACKGROUND_JOBS: bool = setting(
        "TERRAGON_BACKGROUND_JOBS",
        "bool",
        True,
        "Run the 60 s maintenance sweep and rollup in-process (each once per slot across "
        "replicas).",
    )
    JOB_INTERVAL_SECONDS: float | None = setting(
        "TERRAGON_JOB_INTERVAL_SECONDS",
        "float",
        None,
        "Run every periodic job on this interval instead of its own (tests and demos; unset in "
        "production). Replicas must agree on it: it cuts the slots.",
        read=lambda env: _JOB_INTERVAL.read(env) or None,  # 0 = unset
    )
    SIGNING_SECRET: str = setting(
        "TERRAGON_SIGNING_SECRET",
        "str",
        DEV_SIGNING_SECRET,
        "HMAC key for preview tokens. **`serve` requires it**; every worker and replica must "
        "share it.",
        shown_default="random per `up` process, under `up` only",
        secret=True,
    )
    GITHUB_WEBHOOK_SECRET: str = setting(
        "GITHUB_WEBHOOK_SECRET",
        "str",
        DEV_WEBHOOK_SECRET,
        "Verifies `X-Hub-Signature-256` on `/api/webhooks/github`. **`serve` requires it**.",
        shown_default=f"`{DEV_WEBHOOK_SECRET}`, under `up` only",
        secret=True,
    )
    ALERT_WEBHOOK_URL: str | None = setting(
        "TERRAGON_ALERT_WEBHOOK_URL",
        "url",
        None,
        "In-process alert hooks POST here (sites without Prometheus).",
    )
    LOG_LEVEL: str = setting(
        "TERRAGON_LOG_LEVEL",
        "str",
        "info",
        "`debug`, `info`, `warning` or `error` (`--log-level` wins).",
    )
    LOG_FORMAT: str | None = setting(
        "TERRAGON_LOG_FORMAT",
        "str",
        None,
        "`console`: human lines, routine events summarised every 10 s; `json`: every event "
        "(`--log-format` wins).",
        shown_default="console on a terminal, else `json`",
    )
    WORKERS: int = setting(
        "TERRAGON_WORKERS",
        "int",
        1,
        "`uv run terragon serve` worker processes (one per core in production; `/metrics` sums them; "
        "`--workers` wins).",
    )


_DATA_DIR = env_var(ServerSettings, "DATA_DIR")
_JOB_INTERVAL = env_var(ServerSettings, "JOB_INTERVAL_SECONDS")


@dataclass(frozen=True, slots=True)
class CorrelationSettings:
    STALE_RUN_SECONDS: int = setting(
        "TERRAGON_STALE_RUN_SECONDS",
        "int",
        30 * 60,
        "Backstop: a run with no accepted envelope this long is finalized.",
    )
    MISSING_END_SHA_GRACE_SECONDS: int = setting(
        "TERRAGON_MISSING_END_SHA_GRACE_SECONDS",
        "int",
        5 * 60,
        "Backstop: the wait after a `missing_end_sha` quarantine before the run is finalized.",
    )
    OFFLOADS_PER_REPO_PER_MINUTE: int = setting(
        "TERRAGON_OFFLOADS_PER_REPO_PER_MINUTE",
        "int",
        20,
        "Oversized quarantine payloads offloaded to the object store per repo per minute.",
    )
    # At most 32: a batch retried in isolation writes each in a subtransaction, and PostgreSQL
    # caches 64 per transaction. 16: with one statement in flight (the spill below) the batches
    # reach it at c32, and a set-based batch costs less per envelope the larger it is
    # (docs/performance.md "Group commit tuning").
    GROUP_COMMIT_MAX_BATCH: int = setting(
        "TERRAGON_GROUP_COMMIT_MAX_BATCH",
        "int",
        16,
        "Group commit: envelopes at most in one grouped statement (1 = off, at most 32).",
    )
    GROUP_COMMIT_IN_FLIGHT: int = setting(
        "TERRAGON_GROUP_COMMIT_IN_FLIGHT",
        "int",
        2,
        "Group commit: ingest statements one worker runs at once at most before arrivals queue "
        "into the next grouped statement; past the first, only once every running one has run "
        "TERRAGON_GROUP_COMMIT_SPILL_MS. One run's envelopes hold at most one.",
    )
    # 50 ms: an ordinary statement of 16 envelopes takes a few ms, so under load the batches form
    # behind one statement (twice the envelopes of two in flight, issue 28); a statement stuck on
    # one run's lock holds up the others for no longer (tests/hostile/test_run_budgets.py).
    GROUP_COMMIT_SPILL_MS: float = setting(
        "TERRAGON_GROUP_COMMIT_SPILL_MS",
        "float",
        50.0,
        "Group commit: milliseconds every running grouped statement must have run before another "
        "one starts (0: start one whenever fewer than TERRAGON_GROUP_COMMIT_IN_FLIGHT run).",
    )
    RUN_MAX_MESSAGES_PER_MINUTE: int = setting(
        "TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE",
        "int",
        RUN_MAX_MESSAGES_PER_MINUTE,
        "Messages one run (the run its daemon token was minted for) may send per one-minute "
        "window; over → 429 `rate_limited` with `Retry-After`. An envelope with more messages "
        "than this alone is quarantined `invalid_envelope`.",
    )
    RUN_MAX_BYTES_PER_MINUTE: int = setting(
        "TERRAGON_RUN_MAX_BYTES_PER_MINUTE",
        "int",
        RUN_MAX_BYTES_PER_MINUTE,
        "Body bytes one run may send per one-minute window (429 over it; an envelope larger "
        "than this alone is quarantined `invalid_envelope`).",
        shown_default="32 MiB",
    )
    RUN_BUDGET_SYNC_SECONDS: float = setting(
        "TERRAGON_RUN_BUDGET_SYNC_SECONDS",
        "float",
        0.25,
        "How often each worker adds its runs' usage to Valkey and reads back every worker's "
        "totals; a run can overshoot its budget by what other workers admit within one interval.",
    )


@dataclass(frozen=True, slots=True)
class PreviewSettings:
    KID: str = setting(
        "TERRAGON_PREVIEW_KID",
        "str",
        "k1",
        "`kid` of the active preview signing key (keyed by `TERRAGON_SIGNING_SECRET`).",
    )
    PREVIOUS_KID: str | None = setting(
        "TERRAGON_PREVIEW_PREVIOUS_KID",
        "str",
        None,
        "A key id still accepted during a rotation; unset → only the active one.",
    )
    PREVIOUS_SIGNING_SECRET: str | None = setting(
        "TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET",
        "str",
        None,
        "The previous kid's secret during a rotation (≥ 32 bytes when set).",
        shown_default="unset → `TERRAGON_SIGNING_SECRET`",
    )
    RETRY_AFTER_MS: int = setting(
        "TERRAGON_PREVIEW_RETRY_AFTER_MS",
        "int",
        2000,
        "Backoff told to preview clients when the access cache is down.",
    )
    UPSTREAM_CONNECT_TIMEOUT: float = setting(
        "TERRAGON_PREVIEW_UPSTREAM_CONNECT_TIMEOUT",
        "float",
        PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
        "Seconds to reach a preview upstream (502 past it).",
    )
    UPSTREAM_IDLE_TIMEOUT: float = setting(
        "TERRAGON_PREVIEW_UPSTREAM_IDLE_TIMEOUT",
        "float",
        PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS,
        "Seconds without a byte from the upstream before its response ends (504 before the "
        "headers; a streaming body is cut).",
    )
    ORIGIN: str | None = setting(
        "TERRAGON_PREVIEW_ORIGIN",
        "url",
        None,
        "Each preview session's own origin, `{previewSessionId}` in the host (production: e.g. "
        "`https://{previewSessionId}.preview.example.com`, a wildcard DNS name and certificate "
        "routed to this service).",
        shown_default="`http://{previewSessionId}.preview.localhost:<port>`",
    )
    ALLOW_PRIVATE_UPSTREAM: bool = setting(
        "TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM",
        "bool",
        False,
        "Allow loopback/private/link-local preview upstreams (`uv run terragon up` turns it on unless "
        "set; off for `serve`: sandboxes are elsewhere in production).",
        shown_default="`false` (`up`: `true`)",
    )
    ALLOW_PRIVATE_UPSTREAM_GIVEN: bool = field(
        default_factory=lambda: _ALLOW_PRIVATE.raw() is not None
    )
    """Whether `TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM` is set: `terragon up` then keeps it."""
    FILL_LOCK_MS: int = setting(
        "TERRAGON_PREVIEW_FILL_LOCK_MS",
        "int",
        3000,
        "Lifetime of the single-flight lock of one access-cache miss.",
    )


_ALLOW_PRIVATE = env_var(PreviewSettings, "ALLOW_PRIVATE_UPSTREAM")

DOCKER_SOCKET = Path("/var/run/docker.sock")


def _docker_socket(env: Mapping[str, str]) -> Path:
    if explicit := env.get("TERRAGON_DOCKER_SOCKET"):
        return Path(explicit)
    host = env.get("DOCKER_HOST") or ""
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else DOCKER_SOCKET


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    LOCAL_SOCKET_DIR: Path | None = setting(
        "TERRAGON_LOCAL_SOCKET_DIR",
        "path",
        None,
        "Where `local` daemons listen (`{codesandboxId}.sock`).",
        shown_default="`<data-dir>/sandboxes`",
    )
    DELIVERY_TIMEOUT: float = setting(
        "TERRAGON_DELIVERY_TIMEOUT",
        "float",
        5.0,
        "Seconds to hand a start message to a daemon.",
    )
    DOCKER_SOCKET: Path = setting(
        "TERRAGON_DOCKER_SOCKET",
        "path",
        DOCKER_SOCKET,
        "The Docker Engine API's Unix socket (`docker` provider).",
        shown_default="the path of a `unix://` `DOCKER_HOST`, else `/var/run/docker.sock`",
        read=_docker_socket,
    )
    DOCKER_READ_TIMEOUT: float = setting(
        "TERRAGON_DOCKER_READ_TIMEOUT",
        "float",
        10.0,
        "Seconds one read of a `docker` sandbox may take (HEAD, changed paths, one file); past "
        "it the read fails (`working-tree-fallback` / `inconclusive`).",
    )

    def socket_dir(self, data_dir: Path) -> Path:
        return self.LOCAL_SOCKET_DIR or data_dir / "sandboxes"


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    DIR: Path | None = setting(
        "TERRAGON_ARCHIVE_DIR",
        "path",
        None,
        "The Parquet archive as a local directory.",
        shown_default="`<data-dir>/archive`",
    )
    URL: str | None = setting(
        "TERRAGON_ARCHIVE_URL",
        "url",
        None,
        "The archive anywhere: `s3://bucket/prefix` (what replicas on several hosts share; "
        "endpoint and credentials as for `OBJECT_STORE_URL`), `file:///dir` or a path. Wins over "
        "`TERRAGON_ARCHIVE_DIR`.",
        shown_default="unset → `TERRAGON_ARCHIVE_DIR`",
    )
    SETTLE_SECONDS: int = setting(
        "TERRAGON_ARCHIVE_SETTLE_SECONDS",
        "int",
        60,
        "A minute is rolled up once it ended this long ago.",
    )

    def archive_dir(self, data_dir: Path) -> Path:
        """The local archive directory (when `archive_url` is not `s3://`)."""
        if self.URL and not self.URL.startswith("s3://"):
            return Path(self.URL.removeprefix("file://")).resolve()
        return (self.DIR or data_dir / "archive").resolve()

    def archive_url(self, data_dir: Path) -> str:
        """Where the archive lives: an `s3://` URL or a local directory's path."""
        if self.URL and self.URL.startswith("s3://"):
            return self.URL.rstrip("/")
        return str(self.archive_dir(data_dir))


DashboardLaunchSettings = DashboardAccessSettings
"""The dashboard's own settings that `terragon up` / `terragon dashboard` look at to warn before
starting it (declared once in core: the dashboard reads the same)."""


LIBRARY_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "AWS_ACCESS_KEY_ID",
        "str",
        None,
        "The bucket's credentials, with `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`): read "
        "by the S3 clients of every process that reaches a bucket (payloads, archive).",
        secret=True,
    ),
    EnvVar(
        "AWS_SECRET_ACCESS_KEY",
        "str",
        None,
        "See `AWS_ACCESS_KEY_ID`.",
        secret=True,
    ),
)
"""Variables the service's libraries read themselves (no field holds them): documented here so the
configuration table lists them."""


@dataclass(frozen=True, slots=True)
class Settings:
    db: DatabaseSettings = field(default_factory=DatabaseSettings)
    valkey: ValkeySettings = field(default_factory=ValkeySettings)
    objects: ObjectStoreSettings = field(default_factory=ObjectStoreSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)
    preview: PreviewSettings = field(default_factory=PreviewSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    dashboard: DashboardLaunchSettings = field(default_factory=DashboardLaunchSettings)

    def unsafe_secrets(self) -> list[str]:
        """Why these secrets must not serve outside `terragon up`, one line per problem (CONTRACT §3).

        `serve` and its workers refuse to start on any; `up` runs with them and says so. The check
        lives at that boundary, not in `create_app`, so tests and `up` build apps as before.
        """
        server = self.server
        checked = [
            ("TERRAGON_INTERNAL_TOKEN", server.INTERNAL_TOKEN, DEV_INTERNAL_TOKEN),
            ("GITHUB_WEBHOOK_SECRET", server.GITHUB_WEBHOOK_SECRET, DEV_WEBHOOK_SECRET),
            ("TERRAGON_SIGNING_SECRET", server.SIGNING_SECRET, DEV_SIGNING_SECRET),
            ("TERRAGON_METRICS_TOKEN", server.METRICS_TOKEN, DEV_METRICS_TOKEN),
        ]
        distinct = len(checked)
        if self.preview.PREVIOUS_SIGNING_SECRET is not None:  # optional, but a key when set
            name = "TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET"
            checked.append((name, self.preview.PREVIOUS_SIGNING_SECRET, DEV_SIGNING_SECRET))
        problems = [
            f"{name} {problem}"
            for name, value, default in checked
            if (problem := _secret_problem(value, default))
        ]
        # One secret in two places widens who holds it (GitHub would hold the internal token, a
        # Prometheus server the signing key).
        seen: dict[str, str] = {}
        for name, value, default in checked[:distinct]:
            if value in seen and not _secret_problem(value, default):
                problems.append(f"{name} is the same as {seen[value]}; make each one its own")
            seen.setdefault(value, name)
        return problems


def _secret_problem(value: str, default: str) -> str | None:
    if value == "":
        return "is empty"
    if value == DEV_SIGNING_SECRET:
        return "is unset (`terragon up` makes a random one per process; workers and replicas must share one)"
    if value == default:
        return f"is unset or the development default {default!r}, which is for `terragon up` only"
    if value != value.strip():
        # A header value loses its surrounding whitespace on the way in (RFC 9110 §5.5).
        return "has leading or trailing whitespace"
    if (size := len(value.encode())) < MIN_SECRET_BYTES:
        return f"is {size} bytes; at least {MIN_SECRET_BYTES} are needed"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def unsafe_secrets_message(problems: list[str]) -> str:
    """What `serve` (or a worker) says when it refuses to start: each problem and the remedy."""
    return "\n".join(
        [
            "refusing to start on unsafe secrets:",
            *(f"  {problem}" for problem in problems),
            f"Make each a secret of its own with:  {MAKE_SECRET_COMMAND}",
            "(`terragon up` runs on development secrets, for this machine only.)",
        ]
    )
