"""Typed environment variables, each declared once: name, type, default and what it does.

A settings module (one per deployable: `terragon_ingest.settings`, `terragon_dashboard.settings`)
declares each field with `setting(...)`. The field reads its variable when the settings object is
built, and keeps its `EnvVar` in the field's metadata, so the configuration table
(`docs/configuration.md`) and `.env.example` are generated from the settings objects themselves
(`tools/settings_table.py`; a test fails when they are stale). This module and the settings
modules are the only readers of the process environment (`tests/test_no_environ.py`).

The daemon bundle is stdlib-only and imports nothing of the workspace, so it has a reader of its
own with the same shape (`terragon_daemon.settings`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast

T = TypeVar("T")

Kind = Literal["str", "int", "float", "bool", "list", "url", "path"]
"""How a value is parsed. `list` is comma-separated (blanks dropped); `url` and `path` are text."""

ENV_METADATA_KEY: Final = "env"
"""Where a settings field keeps its `EnvVar` (dataclass field metadata)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable of a settings object."""

    name: str
    kind: Kind
    default: object
    """The value when the variable is unset (or empty); None = not configured."""
    doc: str
    """What it does, one or two sentences (the configuration table's last column)."""
    shown_default: str | None = None
    """The table's words for a default that is not a constant (`<data-dir>/archive`)."""
    fallbacks: tuple[str, ...] = ()
    """Variables read, in order, when `name` is unset (`AWS_REGION`, then `AWS_DEFAULT_REGION`)."""
    secret: bool = False
    """A credential: `.env.example` shows it empty, and a value set but empty stays empty (so the
    service can refuse it by name) rather than falling back to the default."""

    def raw(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The text given for it (its fallbacks' when it is unset); None when none is set."""
        environ = os.environ if environ is None else environ
        for name in (self.name, *self.fallbacks):
            value = environ.get(name)
            if value is not None and (value != "" or self.secret):
                return value
        return None

    def read(self, environ: Mapping[str, str] | None = None) -> Any:
        """The typed value: parsed from the environment, else the default."""
        raw = self.raw(environ)
        if raw is None:
            return self.default
        return self.parse(raw)

    def parse(self, raw: str) -> object:
        """`raw` as this variable's type; a malformed value is an error that names it."""
        match self.kind:
            case "int":
                try:
                    return int(raw)
                except ValueError:
                    raise ValueError(f"{self.name} must be an integer, got {raw!r}") from None
            case "float":
                try:
                    return float(raw)
                except ValueError:
                    raise ValueError(f"{self.name} must be a number, got {raw!r}") from None
            case "bool":
                if raw.lower() in _TRUE:
                    return True
                if raw.lower() in _FALSE:
                    return False
                raise ValueError(f"{self.name} must be a boolean (true/false), got {raw!r}")
            case "list":
                return tuple(item.strip() for item in raw.split(",") if item.strip())
            case "path":
                return Path(raw)
            case "str" | "url":
                return raw

    def default_text(self) -> str:
        """The default as the configuration table shows it."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.default == ():
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, tuple):
            return "`" + ",".join(cast(tuple[str, ...], self.default)) + "`"
        if isinstance(self.default, float):
            return f"`{self.default:g}`"
        return f"`{self.default}`"


def setting(
    name: str,
    kind: Kind,
    default: T,
    doc: str,
    *,
    shown_default: str | None = None,
    fallbacks: tuple[str, ...] = (),
    secret: bool = False,
    read: Callable[[Mapping[str, str]], T] | None = None,
) -> T:
    """A settings dataclass field read from `name` when the object is built.

    `read` replaces the plain read for a value derived from more than its variable (it gets the
    environment); the declaration still documents the variable.
    """
    var = EnvVar(name, kind, default, doc, shown_default, fallbacks, secret)

    def factory() -> T:
        return read(os.environ) if read is not None else cast(T, var.read())

    # typed as the value, like `dataclasses.field`: the class body reads `POOL_MAX: int = setting(...)`
    return cast(T, dataclasses.field(default_factory=factory, metadata={ENV_METADATA_KEY: var}))


def env_vars(settings_class: type) -> Iterator[tuple[str, EnvVar]]:
    """Every variable a settings dataclass reads, with its field's dotted path (`db.POOL_MAX`),
    nested groups included, in declaration order."""
    for f in dataclasses.fields(settings_class):
        var = f.metadata.get(ENV_METADATA_KEY)
        if isinstance(var, EnvVar):
            yield f.name, var
        elif isinstance(group := f.default_factory, type) and dataclasses.is_dataclass(group):
            for path, inner in env_vars(group):
                yield f"{f.name}.{path}", inner


def env_var(settings_class: type, field_name: str) -> EnvVar:
    """The variable behind one field, e.g. for a click option's default (`env_var(cls, "X").read`)."""
    for f in dataclasses.fields(settings_class):
        if f.name == field_name and isinstance(var := f.metadata.get(ENV_METADATA_KEY), EnvVar):
            return var
    raise KeyError(f"{settings_class.__name__}.{field_name} is not read from the environment")


def inherited_env(names: frozenset[str], prefixes: tuple[str, ...]) -> dict[str, str]:
    """The part of this process's environment a child process may inherit: the variables named,
    and those that start with one of `prefixes`."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in names or name.startswith(prefixes)
    }
