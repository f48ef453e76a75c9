"""One settings object for the ingest service, read from the environment.

Groups mirror the parts of the system. Every field is documented; the configuration
table (docs/configuration.md) lists the same variables. Deeper modules never import
`get_settings()`: the composition root (`app.create_app`) and the CLI pass settings down.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from terragon_core import (
    PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS,
    PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS,
    RUN_MAX_BYTES_PER_MINUTE,
    RUN_MAX_MESSAGES_PER_MINUTE,
)

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


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_opt(name: str) -> str | None:
    return os.environ.get(name) or None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    URL: str | None = field(default_factory=lambda: _env_opt("DATABASE_URL"))
    """`DATABASE_URL`: PostgreSQL URL. Unset → `terragon up` starts an embedded server."""
    POOL_MAX: int = field(default_factory=lambda: _env_int("TERRAGON_DB_POOL_MAX", 16))
    """`TERRAGON_DB_POOL_MAX`: upper bound of the per-process pool."""
    POOL_MIN: int = field(
        default_factory=lambda: _env_int(
            "TERRAGON_DB_POOL_MIN", _env_int("TERRAGON_DB_POOL_MAX", 16)
        )
    )
    """`TERRAGON_DB_POOL_MIN`: connections opened at start and kept open per process. Defaults
    to `TERRAGON_DB_POOL_MAX`, so no connection is ever opened under load (the daemon-event hot
    path would otherwise pay a connect, ~ms, exactly when it is busiest); capped at the max."""
    CONNECT_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_DB_CONNECT_TIMEOUT", 5.0)
    )
    """`TERRAGON_DB_CONNECT_TIMEOUT`: seconds to wait for a pooled connection before 503."""
    STATEMENT_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_DB_STATEMENT_TIMEOUT", 10.0)
    )
    """`TERRAGON_DB_STATEMENT_TIMEOUT`: seconds any statement of the service's pool may run (every
    ingest statement; over → 503 `unavailable` for that envelope only, the daemon retries). Set as
    a connection option (`-c statement_timeout`): it costs no round trip per statement, where a
    `SET LOCAL` needs a transaction around each (docs/performance.md "Statement timeout"). The
    periodic jobs lift it on their own connection (`db.unbounded`). 0 = no bound."""


@dataclass(frozen=True, slots=True)
class ValkeySettings:
    URL: str | None = field(default_factory=lambda: _env_opt("VALKEY_URL"))
    """`VALKEY_URL`: Valkey/Redis URL. Unset → `terragon up` starts an embedded server."""
    TIMEOUT: float = field(default_factory=lambda: _env_float("TERRAGON_VALKEY_TIMEOUT", 0.5))
    """`TERRAGON_VALKEY_TIMEOUT`: seconds per Valkey call; past it access paths fail closed."""


@dataclass(frozen=True, slots=True)
class ObjectStoreSettings:
    URL: str | None = field(default_factory=lambda: _env_opt("OBJECT_STORE_URL"))
    """`OBJECT_STORE_URL`: `s3://bucket/prefix` (S3/R2) or `file:///dir`. Unset → `<data-dir>/objects`."""
    S3_ENDPOINT: str | None = field(default_factory=lambda: _env_opt("OBJECT_STORE_S3_ENDPOINT"))
    """`OBJECT_STORE_S3_ENDPOINT`: custom endpoint for R2/MinIO (also the archive's, when
    `TERRAGON_ARCHIVE_URL` is `s3://`); credentials come from AWS_* vars."""
    TIMEOUT: float = field(default_factory=lambda: _env_float("OBJECT_STORE_TIMEOUT", 30.0))
    """`OBJECT_STORE_TIMEOUT`: seconds per object-store request (connect: at most 5), two
    retries; a wrong endpoint fails within about three times this, never hangs."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    ENV: str = field(default_factory=lambda: _env_str("TERRAGON_ENV", "dev"))
    """`TERRAGON_ENV`: environment name; part of every repo-access cache key."""
    INTERNAL_TOKEN: str = field(
        default_factory=lambda: _env_str("TERRAGON_INTERNAL_TOKEN", DEV_INTERNAL_TOKEN)
    )
    """`TERRAGON_INTERNAL_TOKEN`: bearer token for `/api/internal/*`. Required outside `up`."""
    METRICS_TOKEN: str = field(
        default_factory=lambda: _env_str("TERRAGON_METRICS_TOKEN", DEV_METRICS_TOKEN)
    )
    """`TERRAGON_METRICS_TOKEN`: bearer token for `/metrics` (its labels name every tenant's repo
    and user), for the Prometheus scraper. Required outside `up`; unset under `up`, `/metrics`
    answers loopback peers without one."""
    PUBLIC_URL: str | None = field(default_factory=lambda: _env_opt("TERRAGON_PUBLIC_URL"))
    """`TERRAGON_PUBLIC_URL`: base URL daemons post to (`ingestUrl`); default `http://host:port`."""
    DATA_DIR: Path = field(
        default_factory=lambda: Path(_env_str("TERRAGON_DATA_DIR", ".data")).resolve()
    )
    """`TERRAGON_DATA_DIR`: embedded servers, local object store and archive live here."""
    MAX_BODY_BYTES: int = field(
        default_factory=lambda: _env_int("TERRAGON_MAX_BODY_BYTES", 4 * 1024 * 1024)
    )
    """`TERRAGON_MAX_BODY_BYTES`: daemon-event body cap; larger bodies answer 413."""
    WEBHOOK_MAX_BODY_BYTES: int = field(
        default_factory=lambda: _env_int("TERRAGON_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)
    )
    """`TERRAGON_WEBHOOK_MAX_BODY_BYTES`: GitHub webhook body cap; larger bodies answer 413 before
    the signature is looked at."""
    MAX_CONNECTIONS: int = field(default_factory=lambda: _env_int("TERRAGON_MAX_CONNECTIONS", 1000))
    """`TERRAGON_MAX_CONNECTIONS`: open connections per process; more are refused at once (503,
    closed), never queued."""
    HEADER_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_HEADER_TIMEOUT_SECONDS", 10.0)
    )
    """`TERRAGON_HEADER_TIMEOUT_SECONDS`: a request's headers must be complete this long after its
    first byte (or after the connection opened), else 408 and the connection is closed."""
    BODY_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_BODY_TIMEOUT_SECONDS", 10.0)
    )
    """`TERRAGON_BODY_TIMEOUT_SECONDS`: a request body must make progress at least this often while
    the service waits for it, else 408 (or a close, once an answer has started)."""
    KEEP_ALIVE_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_KEEP_ALIVE_SECONDS", 5.0)
    )
    """`TERRAGON_KEEP_ALIVE_SECONDS`: an idle keep-alive connection is closed after this long."""
    BACKGROUND_JOBS: bool = field(
        default_factory=lambda: _env_bool("TERRAGON_BACKGROUND_JOBS", True)
    )
    """`TERRAGON_BACKGROUND_JOBS`: run the 60 s maintenance sweep and rollup in-process."""
    JOB_INTERVAL_SECONDS: float | None = field(
        default_factory=lambda: _env_float("TERRAGON_JOB_INTERVAL_SECONDS", 0.0) or None
    )
    """`TERRAGON_JOB_INTERVAL_SECONDS`: run every periodic job on this interval instead of its
    own (tests and demos; unset in production). Replicas must agree on it: it cuts the slots."""
    SIGNING_SECRET: str = field(
        default_factory=lambda: _env_str("TERRAGON_SIGNING_SECRET", DEV_SIGNING_SECRET)
    )
    """`TERRAGON_SIGNING_SECRET`: HMAC key for preview tokens. Required outside `up` (which makes
    a random one per process); every worker and replica must share it."""
    GITHUB_WEBHOOK_SECRET: str = field(
        default_factory=lambda: _env_str("GITHUB_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
    )
    """`GITHUB_WEBHOOK_SECRET`: verifies `X-Hub-Signature-256` on `/api/webhooks/github`.
    Required outside `up`."""
    ALERT_WEBHOOK_URL: str | None = field(
        default_factory=lambda: _env_opt("TERRAGON_ALERT_WEBHOOK_URL")
    )
    """`TERRAGON_ALERT_WEBHOOK_URL`: in-process alert hooks POST here (sites without Prometheus)."""
    LOG_LEVEL: str = field(default_factory=lambda: _env_str("TERRAGON_LOG_LEVEL", "info"))
    """`TERRAGON_LOG_LEVEL`: debug, info, warning or error."""


@dataclass(frozen=True, slots=True)
class CorrelationSettings:
    STALE_RUN_SECONDS: int = field(
        default_factory=lambda: _env_int("TERRAGON_STALE_RUN_SECONDS", 30 * 60)
    )
    """`TERRAGON_STALE_RUN_SECONDS`: a run with no accepted envelope this long is finalized."""
    MISSING_END_SHA_GRACE_SECONDS: int = field(
        default_factory=lambda: _env_int("TERRAGON_MISSING_END_SHA_GRACE_SECONDS", 5 * 60)
    )
    """`TERRAGON_MISSING_END_SHA_GRACE_SECONDS`: wait after a missing-endSha quarantine."""
    OFFLOADS_PER_REPO_PER_MINUTE: int = field(
        default_factory=lambda: _env_int("TERRAGON_OFFLOADS_PER_REPO_PER_MINUTE", 20)
    )
    """`TERRAGON_OFFLOADS_PER_REPO_PER_MINUTE`: oversized quarantine offloads allowed per repo."""
    GROUP_COMMIT_MAX_BATCH: int = field(
        default_factory=lambda: _env_int("TERRAGON_GROUP_COMMIT_MAX_BATCH", 8)
    )
    """`TERRAGON_GROUP_COMMIT_MAX_BATCH`: envelopes at most in one grouped statement (1 = off).
    At most 32: a batch retried in isolation writes each in a subtransaction, and PostgreSQL
    caches 64 per transaction. 8 by default: the tail is the envelope that waits behind a long
    statement, and above 8 the batches buy no throughput (docs/performance.md "Group commit")."""
    GROUP_COMMIT_IN_FLIGHT: int = field(
        default_factory=lambda: _env_int("TERRAGON_GROUP_COMMIT_IN_FLIGHT", 2)
    )
    """`TERRAGON_GROUP_COMMIT_IN_FLIGHT`: ingest statements one worker runs at once before
    arrivals queue into the next grouped statement (about the database's cores). One run's
    envelopes occupy at most one of them."""
    RUN_MAX_MESSAGES_PER_MINUTE: int = field(
        default_factory=lambda: _env_int(
            "TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE", RUN_MAX_MESSAGES_PER_MINUTE
        )
    )
    """`TERRAGON_RUN_MAX_MESSAGES_PER_MINUTE`: messages one run (the run its daemon token was
    minted for) may send per one-minute window; over → 429 `rate_limited` with `Retry-After`.
    An envelope with more messages than this alone is quarantined `invalid_envelope`."""
    RUN_MAX_BYTES_PER_MINUTE: int = field(
        default_factory=lambda: _env_int(
            "TERRAGON_RUN_MAX_BYTES_PER_MINUTE", RUN_MAX_BYTES_PER_MINUTE
        )
    )
    """`TERRAGON_RUN_MAX_BYTES_PER_MINUTE`: body bytes one run may send per one-minute window
    (429 over it; an envelope larger than this alone is quarantined `invalid_envelope`)."""
    RUN_BUDGET_SYNC_SECONDS: float = field(
        default_factory=lambda: _env_float("TERRAGON_RUN_BUDGET_SYNC_SECONDS", 0.25)
    )
    """`TERRAGON_RUN_BUDGET_SYNC_SECONDS`: how often each worker adds its runs' usage to Valkey
    and reads back the totals of every worker and replica. A run can overshoot its budget by what
    the other workers admit within one such interval."""


@dataclass(frozen=True, slots=True)
class PreviewSettings:
    KID: str = field(default_factory=lambda: _env_str("TERRAGON_PREVIEW_KID", "k1"))
    """`TERRAGON_PREVIEW_KID`: `kid` of the active preview signing key (keyed by `SIGNING_SECRET`)."""
    PREVIOUS_KID: str | None = field(
        default_factory=lambda: _env_opt("TERRAGON_PREVIEW_PREVIOUS_KID")
    )
    """`TERRAGON_PREVIEW_PREVIOUS_KID`: still accepted during a rotation; unset → only the active."""
    PREVIOUS_SIGNING_SECRET: str | None = field(
        default_factory=lambda: _env_opt("TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET")
    )
    """`TERRAGON_PREVIEW_PREVIOUS_SIGNING_SECRET`: secret of the previous kid (default: the same)."""
    RETRY_AFTER_MS: int = field(
        default_factory=lambda: _env_int("TERRAGON_PREVIEW_RETRY_AFTER_MS", 2000)
    )
    """`TERRAGON_PREVIEW_RETRY_AFTER_MS`: backoff told to clients when the access cache is down."""
    UPSTREAM_CONNECT_TIMEOUT: float = field(
        default_factory=lambda: _env_float(
            "TERRAGON_PREVIEW_UPSTREAM_CONNECT_TIMEOUT", PREVIEW_UPSTREAM_CONNECT_TIMEOUT_SECONDS
        )
    )
    """`TERRAGON_PREVIEW_UPSTREAM_CONNECT_TIMEOUT`: seconds to reach a preview upstream (502 past it)."""
    UPSTREAM_IDLE_TIMEOUT: float = field(
        default_factory=lambda: _env_float(
            "TERRAGON_PREVIEW_UPSTREAM_IDLE_TIMEOUT", PREVIEW_UPSTREAM_IDLE_TIMEOUT_SECONDS
        )
    )
    """`TERRAGON_PREVIEW_UPSTREAM_IDLE_TIMEOUT`: seconds without a byte from the upstream before
    its response ends (504 before the headers; a streaming body is cut)."""
    ORIGIN: str | None = field(default_factory=lambda: _env_opt("TERRAGON_PREVIEW_ORIGIN"))
    """`TERRAGON_PREVIEW_ORIGIN`: each session's origin, `{previewSessionId}` in the host (e.g.
    `https://{previewSessionId}.preview.example.com`); unset → `http://{previewSessionId}.preview.localhost:<port>`."""
    ALLOW_PRIVATE_UPSTREAM: bool = field(
        default_factory=lambda: _env_bool("TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM", False)
    )
    """`TERRAGON_PREVIEW_ALLOW_PRIVATE_UPSTREAM`: allow loopback/private/link-local upstreams
    (`terragon up` turns it on unless set; off for `serve`: sandboxes are elsewhere in production)."""
    FILL_LOCK_MS: int = field(
        default_factory=lambda: _env_int("TERRAGON_PREVIEW_FILL_LOCK_MS", 3000)
    )
    """`TERRAGON_PREVIEW_FILL_LOCK_MS`: lifetime of the single-flight lock of one cache miss."""


def _docker_socket() -> Path:
    if explicit := _env_opt("TERRAGON_DOCKER_SOCKET"):
        return Path(explicit)
    host = _env_opt("DOCKER_HOST") or ""
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else DOCKER_SOCKET


DOCKER_SOCKET = Path("/var/run/docker.sock")


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    LOCAL_SOCKET_DIR: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env_opt("TERRAGON_LOCAL_SOCKET_DIR")) else None
    )
    """`TERRAGON_LOCAL_SOCKET_DIR`: where `local` daemons listen (`{codesandboxId}.sock`); default `<data-dir>/sandboxes`."""
    DELIVERY_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_DELIVERY_TIMEOUT", 5.0)
    )
    """`TERRAGON_DELIVERY_TIMEOUT`: seconds to hand a start message to a daemon."""
    DOCKER_SOCKET: Path = field(default_factory=lambda: _docker_socket())
    """`TERRAGON_DOCKER_SOCKET`: the Docker Engine API's Unix socket (`docker` provider); default
    the path of a `unix://` `DOCKER_HOST`, else `/var/run/docker.sock`."""
    DOCKER_READ_TIMEOUT: float = field(
        default_factory=lambda: _env_float("TERRAGON_DOCKER_READ_TIMEOUT", 10.0)
    )
    """`TERRAGON_DOCKER_READ_TIMEOUT`: seconds one read of a `docker` sandbox may take (HEAD,
    changed paths, one file); past it the read fails (`working-tree-fallback` / `inconclusive`)."""

    def socket_dir(self, data_dir: Path) -> Path:
        return self.LOCAL_SOCKET_DIR or data_dir / "sandboxes"


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    DIR: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env_opt("TERRAGON_ARCHIVE_DIR")) else None
    )
    """`TERRAGON_ARCHIVE_DIR`: the Parquet archive as a local directory; default `<data-dir>/archive`."""
    URL: str | None = field(default_factory=lambda: _env_opt("TERRAGON_ARCHIVE_URL"))
    """`TERRAGON_ARCHIVE_URL`: the archive anywhere — `s3://bucket/prefix` (what replicas on
    several hosts share; endpoint and credentials as for `OBJECT_STORE_URL`), `file:///dir` or a
    path. Wins over `TERRAGON_ARCHIVE_DIR`."""
    SETTLE_SECONDS: int = field(
        default_factory=lambda: _env_int("TERRAGON_ARCHIVE_SETTLE_SECONDS", 60)
    )
    """`TERRAGON_ARCHIVE_SETTLE_SECONDS`: a minute is rolled up once it ended this long ago."""

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
