"""UI rules: default globs (brace expansion, excludes), repo rules files, invalid files, and
matching of renames, spaces, newlines and non-ASCII names."""

from __future__ import annotations

import pytest

from terragon_ingest.daemon_events.ui_rules import (
    DEFAULT_RULES,
    UiRulesInvalid,
    compile_globs,
    matching_paths,
    parse_rules,
)
from terragon_ingest.sandbox.diff_parser import ChangedPath


@pytest.mark.parametrize(
    ("path", "ui"),
    [
        ("App.tsx", True),
        ("src/deep/er/Button.jsx", True),
        ("styles/a b.css", True),
        ("styles/naïve ☃.scss", True),
        ("content/post.mdx", True),
        ("public/favicon.ico", True),
        ("public/img/a\nb.png", True),
        ("src/server.ts", False),
        ("docs/guide.mdx", False),
        ("docs/public/x.png", False),
        (".github/workflows/ci.tsx", False),
        ("publicity/x.txt", False),
        ("src/App.tsx.bak", False),
    ],
)
def test_default_rules(path: str, ui: bool) -> None:
    assert DEFAULT_RULES.matches(path) is ui


def test_brace_expansion_nested_and_unbalanced() -> None:
    nested = compile_globs(["a/{b,c{d,e}}.x"])
    assert nested.globs[0].alternatives == 3  # a/b.x, a/cd.x, a/ce.x: counted, not expanded
    for path in ("a/b.x", "a/cd.x", "a/ce.x"):
        assert nested.matcher().matches(path)
    for path in ("a/c.x", "a/bd.x", "a/{b,c{d,e}}.x", "a/cde.x"):
        assert not nested.matcher().matches(path)
    assert compile_globs(["plain/*.ts"]).globs[0].alternatives == 1
    for bad in ("a/{b,c", "a/b}c"):
        with pytest.raises(UiRulesInvalid):
            compile_globs([bad])


def test_repo_rules_replace_defaults_and_apply_excludes() -> None:
    rules = parse_rules(
        b'{"schemaVersion": 1, "uiRules": ["web/**", "*.vue", "img/[!x]?.png"], "excludes": ["web/docs/**"]}',
        "rules.json",
    )
    assert rules.matches("web/app/page.ts")
    assert rules.matches("Comp.vue") and not rules.matches("nested/Comp.vue")
    assert rules.matches("img/a1.png") and not rules.matches("img/x1.png")
    assert not rules.matches("web/docs/readme.md")
    assert not rules.matches("src/App.tsx")  # the defaults no longer apply


def test_absent_file_means_defaults() -> None:
    assert parse_rules(None, "x") is DEFAULT_RULES


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"uiRules": ["*.tsx"]}',
        b'{"schemaVersion": 2, "uiRules": ["*.tsx"]}',
        b'{"schemaVersion": true, "uiRules": ["*.tsx"]}',
        b'{"schemaVersion": 1, "uiRules": "*.tsx"}',
        b'{"schemaVersion": 1, "uiRules": [1]}',
        b'{"schemaVersion": 1, "uiRules": [""]}',
        b'{"schemaVersion": 1, "uiRules": ["/abs/*.tsx"]}',
        b'{"schemaVersion": 1, "uiRules": ["src/{a,b"]}',
        b'{"schemaVersion": 1, "uiRules": ["src/[ab"]}',
        b'{"schemaVersion": 1, "uiRules": ["*.tsx"], "excludes": "docs"}',
    ],
)
def test_invalid_rules_files(raw: bytes) -> None:
    with pytest.raises(UiRulesInvalid):
        parse_rules(raw, ".terragon/preview-validation.json")


def test_renames_count_old_and_new_paths_once() -> None:
    changes = [
        ChangedPath("R", "assets/logo.png", "public/logo.png"),
        ChangedPath("R", "src/new.tsx", "src/old.ts"),
        ChangedPath("M", "src/new.tsx"),
        ChangedPath("D", "src/gone.py"),
        ChangedPath("?", "naïve dir/x y.css"),
    ]
    assert matching_paths(DEFAULT_RULES, changes) == [
        "public/logo.png",
        "src/new.tsx",
        "naïve dir/x y.css",
    ]
    assert matching_paths(DEFAULT_RULES, [ChangedPath("M", "main.go")]) == []
