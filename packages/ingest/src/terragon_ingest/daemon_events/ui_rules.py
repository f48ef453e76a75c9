"""UI rules: which changed paths make a run's result need preview validation (CONTRACT §4).

Rules come from `.terragon/preview-validation.json` in the sandbox checkout:
`{"schemaVersion": 1, "uiRules": [globs], "excludes": [globs]}` (`excludes` optional). Absent →
the defaults `**/*.{tsx,jsx,css,scss,mdx}`, `public/**/*` minus `docs/**/*`, `.github/**/*`.
Anything else (bad JSON, wrong types, another schemaVersion, a malformed glob, over the limits)
is invalid.

The file is untrusted input: at most `UI_RULES_MAX_GLOBS` globs (both lists together) of at most
`UI_RULES_MAX_GLOB_LENGTH` characters, each expanding to at most `UI_RULES_MAX_ALTERNATIVES`
patterns (counted without expanding). Matching is linear in the path's length (`globs.py`: an
automaton, never a backtracking regex), and one decision matches at most `UI_MATCH_MAX_PATHS`
paths within a deadline: past either, `UiMatchBudgetExceeded` (the caller answers
`inconclusive`). Both parsing and matching are CPU work: callers run them off the event loop.

Globs: `**/` is zero or more directories, `**` anything, `*` and `?` stay inside one path segment,
`[abc]` / `[!abc]` are classes, `{a,b}` alternates (nested allowed). A match is on the whole path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from terragon_core import (
    DEFAULT_UI_EXCLUDES,
    DEFAULT_UI_RULES,
    UI_MATCH_MAX_PATHS,
    UI_RULES_MAX_ALTERNATIVES,
    UI_RULES_MAX_GLOB_LENGTH,
    UI_RULES_MAX_GLOBS,
)
from terragon_ingest.daemon_events.globs import GlobError, GlobSet, MatchBudgetExceeded, parse_glob

if TYPE_CHECKING:
    from collections.abc import Sequence

    from terragon_ingest.sandbox.diff_parser import ChangedPath

SCHEMA_VERSION = 1


class UiRulesInvalid(ValueError):
    """The repo's UI rules file cannot be used; the outcome is inconclusive (`ui_rules_invalid`)."""


class UiMatchBudgetExceeded(Exception):
    """Too many changed paths, or matching ran past its deadline: the outcome is unknown."""


class _RulesFile(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    schema_version: int
    ui_rules: list[str]
    excludes: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UiRules:
    include: GlobSet
    exclude: GlobSet
    source: str
    """`default` or the rules file's path."""

    def matches(self, path: str) -> bool:
        """One path (tests, diagnostics); `matching_paths` is the bulk, budgeted form."""
        return self.include.matcher().matches(path) and not self.exclude.matcher().matches(path)


def compile_globs(patterns: Sequence[str]) -> GlobSet:
    """`UiRulesInvalid` for a malformed glob or one over the length / alternatives limits."""
    try:
        return GlobSet(
            [
                parse_glob(
                    p,
                    max_length=UI_RULES_MAX_GLOB_LENGTH,
                    max_alternatives=UI_RULES_MAX_ALTERNATIVES,
                )
                for p in patterns
            ]
        )
    except GlobError as exc:
        raise UiRulesInvalid(str(exc)) from exc


DEFAULT_RULES = UiRules(
    include=compile_globs(DEFAULT_UI_RULES),
    exclude=compile_globs(DEFAULT_UI_EXCLUDES),
    source="default",
)


def parse_rules(raw: bytes | None, source: str) -> UiRules:
    """The repo's rules; `raw is None` (no file) → the defaults; raise `UiRulesInvalid` otherwise."""
    if raw is None:
        return DEFAULT_RULES
    try:
        parsed = msgspec.json.decode(raw, type=_RulesFile, strict=True)
    except msgspec.DecodeError as exc:
        raise UiRulesInvalid(f"{source}: {exc}") from exc
    if parsed.schema_version != SCHEMA_VERSION:
        raise UiRulesInvalid(f"{source}: schemaVersion must be {SCHEMA_VERSION}")
    count = len(parsed.ui_rules) + len(parsed.excludes)
    if count > UI_RULES_MAX_GLOBS:
        raise UiRulesInvalid(
            f"{source}: {count} globs (uiRules + excludes), over the limit of {UI_RULES_MAX_GLOBS}"
        )
    try:
        return UiRules(compile_globs(parsed.ui_rules), compile_globs(parsed.excludes), source)
    except UiRulesInvalid as exc:
        raise UiRulesInvalid(f"{source}: {exc}") from exc


def matching_paths(
    rules: UiRules,
    changes: Sequence[ChangedPath],
    *,
    deadline: float | None = None,
    max_paths: int = UI_MATCH_MAX_PATHS,
) -> list[str]:
    """Changed paths the rules select; a rename or copy counts both its old and its new path.
    `deadline` is a `time.monotonic()` value; past it, or over `max_paths` changed paths,
    `UiMatchBudgetExceeded`."""
    if len(changes) > max_paths:
        raise UiMatchBudgetExceeded(
            f"{len(changes)} changed paths, over the {max_paths} one decision may match"
        )
    include = rules.include.matcher(deadline)
    exclude = rules.exclude.matcher(deadline)
    paths: list[str] = []
    seen: set[str] = set()
    try:
        for change in changes:
            if deadline is not None and time.monotonic() > deadline:
                raise MatchBudgetExceeded("deadline")
            for path in (change.path, change.old_path):
                if path is None or path in seen:
                    continue
                seen.add(path)
                if include.matches(path) and not exclude.matches(path):
                    paths.append(path)
    except MatchBudgetExceeded:
        raise UiMatchBudgetExceeded(
            f"matching {len(changes)} changed paths against {rules.source} ran past its "
            f"deadline ({len(seen)} paths decided)"
        ) from None
    return paths
