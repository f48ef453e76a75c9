"""UI rules: which changed paths make a run's result need preview validation (CONTRACT §4).

Rules come from `.terragon/preview-validation.json` in the sandbox checkout:
`{"schemaVersion": 1, "uiRules": [globs], "excludes": [globs]}` (`excludes` optional). Absent →
the defaults `**/*.{tsx,jsx,css,scss,mdx}`, `public/**/*` minus `docs/**/*`, `.github/**/*`.
Anything else (bad JSON, wrong types, another schemaVersion, a malformed glob) is invalid.

Globs: `**/` is zero or more directories, `**` anything, `*` and `?` stay inside one path segment,
`[abc]` / `[!abc]` are classes, `{a,b}` alternates (nested allowed). A match is on the whole path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from terragon_core import DEFAULT_UI_EXCLUDES, DEFAULT_UI_RULES

if TYPE_CHECKING:
    from terragon_ingest.sandbox.diff_parser import ChangedPath

SCHEMA_VERSION = 1


class UiRulesInvalid(ValueError):
    """The repo's UI rules file cannot be used; the outcome is inconclusive (`ui_rules_invalid`)."""


class _RulesFile(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    schema_version: int
    ui_rules: list[str]
    excludes: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UiRules:
    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    source: str
    """`default` or the rules file's path."""

    def matches(self, path: str) -> bool:
        return any(p.fullmatch(path) for p in self.include) and not any(
            p.fullmatch(path) for p in self.exclude
        )


def expand_braces(pattern: str) -> list[str]:
    """`a/{b,c{d,e}}.x` → `a/b.x`, `a/cd.x`, `a/ce.x`."""
    depth, start = 0, -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                options = _split_top_level(pattern[start + 1 : i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [e for o in options for e in expand_braces(head + o + tail)]
    if depth != 0 or "}" in pattern:
        raise UiRulesInvalid(f"unbalanced braces in glob {pattern!r}")
    return [pattern]


def _split_top_level(body: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in body:
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        current.append(ch)
    parts.append("".join(current))
    return parts


def glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                raise UiRulesInvalid(f"unclosed character class in glob {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def compile_globs(patterns: list[str] | tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        if not pattern or pattern.startswith("/"):
            raise UiRulesInvalid(f"glob {pattern!r} must be a non-empty repo-relative pattern")
        for expanded in expand_braces(pattern):
            compiled.append(re.compile(glob_to_regex(expanded), re.DOTALL))
    return tuple(compiled)


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
    return UiRules(compile_globs(parsed.ui_rules), compile_globs(parsed.excludes), source)


def matching_paths(rules: UiRules, changes: list[ChangedPath]) -> list[str]:
    """Changed paths the rules select; a rename or copy counts both its old and its new path."""
    paths: list[str] = []
    for change in changes:
        for path in (change.path, change.old_path):
            if path is not None and rules.matches(path) and path not in paths:
                paths.append(path)
    return paths
