"""The process-wide resources handed to every route by dependency injection.

Built once in the app's lifespan (`app.create_app`); routes receive `services: Services`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar.datastructures import State
from litestar.di import NamedDependency
from valkey.asyncio import Valkey

from terragon_ingest.db import Pool

# Imported at run time, not under TYPE_CHECKING: Litestar resolves these hints when it
# validates the injected dependency.
from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.runs.tokens import KnownTokens
from terragon_ingest.settings import Settings
from terragon_ingest.telemetry import Metrics


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: Pool
    valkey: Valkey
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)
    """Domain-owned singletons (object store, sandbox registry, ...) keyed by their module."""
    objects: QuarantineObjects | None = None
    """The object store for offloaded quarantine payloads (terragon_ingest.objects)."""
    tokens: KnownTokens = field(default_factory=KnownTokens)
    """Daemon tokens seen to resolve, checked before a body is decoded (runs.tokens)."""


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


ServicesDep = NamedDependency[Services]
"""Annotate route parameters as `services: ServicesDep` to receive the app's `Services`."""
