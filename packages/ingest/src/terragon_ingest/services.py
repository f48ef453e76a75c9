"""The process-wide resources handed to every route by dependency injection.

Built once in the app's lifespan (`app.create_app`); routes receive `services: ServicesDep`.
Each domain's process-wide singleton is a typed field, set by the lifespan that builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar.datastructures import State
from litestar.di import NamedDependency

from terragon_ingest.runs.tokens import KnownTokens

if TYPE_CHECKING:
    from valkey.asyncio import Valkey

    from terragon_ingest.access import RepoAccessCache
    from terragon_ingest.daemon_events.budgets import RunBudgets
    from terragon_ingest.daemon_events.group_commit import GroupCommit, QuarantineCommit
    from terragon_ingest.db import Pool
    from terragon_ingest.objects import QuarantineObjects
    from terragon_ingest.preview.lifespan import PreviewRuntime
    from terragon_ingest.settings import Settings
    from terragon_ingest.telemetry import Metrics


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: Pool
    valkey: Valkey
    metrics: Metrics
    objects: QuarantineObjects | None = None
    """The object store for offloaded quarantine payloads (terragon_ingest.objects)."""
    group_commit: GroupCommit | None = None
    """Grouped statements for ordinary envelopes (daemon_events.group_commit); None = off."""
    quarantine_commit: QuarantineCommit | None = None
    """Grouped statements for quarantine rows (daemon_events.group_commit); None = off."""
    budgets: RunBudgets | None = None
    """Per-run message and byte budgets (daemon_events.budgets); None = unlimited."""
    tokens: KnownTokens = field(default_factory=KnownTokens)
    """Daemon tokens seen to resolve, checked before a body is decoded (runs.tokens)."""
    access: RepoAccessCache | None = None
    """The repo-access cache (its single-flight futures are shared by every request); set by
    `preview.lifespan.preview_lifespan`, read through `preview.lifespan.access_cache`."""
    preview: PreviewRuntime | None = None
    """The preview signing keyring and upstream HTTP client; set by `preview_lifespan`."""


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


if TYPE_CHECKING:
    ServicesDep = NamedDependency[Services]
else:
    # At run time Litestar would validate the injected value against `Services` field by field on
    # every request (msgspec resolving each field's type, which would make this module import
    # every domain); the container is ours and built once, so it is passed through as is.
    ServicesDep = NamedDependency[Any]
"""Annotate route parameters as `services: ServicesDep` to receive the app's `Services`."""
