"""One settings object for the ingest service, read from the environment.

Groups mirror the parts of the system. Every field is documented; the README's configuration
table lists the same variables. Deeper modules never import
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
)


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
    """`OBJECT_STORE_S3_ENDPOINT`: custom endpoint for R2/MinIO; credentials come from AWS_* vars."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    ENV: str = field(default_factory=lambda: _env_str("TERRAGON_ENV", "dev"))
    """`TERRAGON_ENV`: environment name; part of every repo-access cache key."""
    INTERNAL_TOKEN: str = field(
        default_factory=lambda: _env_str("TERRAGON_INTERNAL_TOKEN", "dev-internal-token")
    )
    """`TERRAGON_INTERNAL_TOKEN`: bearer token for `/api/internal/*`. Set it in production."""
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
    BACKGROUND_JOBS: bool = field(
        default_factory=lambda: _env_bool("TERRAGON_BACKGROUND_JOBS", True)
    )
    """`TERRAGON_BACKGROUND_JOBS`: run the 60 s maintenance sweep and rollup in-process."""
    SIGNING_SECRET: str = field(
        default_factory=lambda: _env_str("TERRAGON_SIGNING_SECRET", secrets.token_hex(32))
    )
    """`TERRAGON_SIGNING_SECRET`: HMAC key for preview tokens. Random per process if unset."""
    GITHUB_WEBHOOK_SECRET: str = field(
        default_factory=lambda: _env_str("GITHUB_WEBHOOK_SECRET", "dev-webhook-secret")
    )
    """`GITHUB_WEBHOOK_SECRET`: verifies `X-Hub-Signature-256` on `/api/webhooks/github`."""
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

    def socket_dir(self, data_dir: Path) -> Path:
        return self.LOCAL_SOCKET_DIR or data_dir / "sandboxes"


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    DIR: Path | None = field(
        default_factory=lambda: Path(p) if (p := _env_opt("TERRAGON_ARCHIVE_DIR")) else None
    )
    """`TERRAGON_ARCHIVE_DIR`: the Parquet archive (shared by replicas); default `<data-dir>/archive`."""
    SETTLE_SECONDS: int = field(
        default_factory=lambda: _env_int("TERRAGON_ARCHIVE_SETTLE_SECONDS", 60)
    )
    """`TERRAGON_ARCHIVE_SETTLE_SECONDS`: a minute is rolled up once it ended this long ago."""

    def archive_dir(self, data_dir: Path) -> Path:
        return (self.DIR or data_dir / "archive").resolve()


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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
