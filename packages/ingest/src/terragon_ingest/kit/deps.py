"""Typed dependencies: each domain's resources, built once in the app's lifespan and handed to
its routes through Litestar DI.

A domain defines one frozen dataclass of what it uses (`access.deps.AccessDeps`, ...); the
lifespan in `app.create_app` builds them all and stores each under its name on `app.state`;
`provide_from_state(name)` is the one `Provide` per deps object. Routes annotate the parameter
with `Injected[XDeps]`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

T = TypeVar("T")

Injected = NamedDependency[SkipValidation[T]]
"""A route parameter Litestar injects as is: the deps objects are ours and built once, so they
are not validated field by field on every request (a pool or a Valkey client is no msgspec type)."""


def provide_from_state(name: str) -> Provide:
    """The `Provide` that hands a route the deps object the lifespan stored as `app.state.<name>`."""

    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)
