"""The UI-rule glob matcher: same answers as the regex-based matcher it replaced on ordinary
globs (property-tested against a copy of it), the limits of CONTRACT §4, and time linear in the
path's length on the globs that made the regex backtrack forever."""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terragon_core import UI_RULES_MAX_ALTERNATIVES, UI_RULES_MAX_GLOB_LENGTH, UI_RULES_MAX_GLOBS
from terragon_ingest.daemon_events import globs
from terragon_ingest.daemon_events.globs import GlobError, GlobSet, MatchBudgetExceeded, parse_glob
from terragon_ingest.daemon_events.ui_rules import (
    UiMatchBudgetExceeded,
    UiRulesInvalid,
    matching_paths,
    parse_rules,
)
from terragon_ingest.sandbox.diff_parser import ChangedPath


def glob_set(*patterns: str) -> GlobSet:
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


def new_match(pattern: str, path: str) -> bool:
    return glob_set(pattern).matcher().matches(path)


# --------------------------------------------------------------- the old matcher, as reference
def old_expand(pattern: str) -> list[str]:
    depth, start = 0, -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                options, level, current = [], 0, []
                for c in pattern[start + 1 : i]:
                    if c == "," and level == 0:
                        options.append("".join(current))
                        current = []
                        continue
                    level += {"{": 1, "}": -1}.get(c, 0)
                    current.append(c)
                options.append("".join(current))
                head, tail = pattern[:start], pattern[i + 1 :]
                return [e for o in options for e in old_expand(head + o + tail)]
    return [pattern]


def old_regex(pattern: str) -> str:
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
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def old_match(pattern: str, path: str) -> bool:
    return any(re.fullmatch(old_regex(e), path, re.DOTALL) for e in old_expand(pattern))


# --------------------------------------------------------------- ordinary globs, generated
LITERAL = st.sampled_from(list("ab.-x"))
CLASS = st.sampled_from(["[ab]", "[a-c]", "[.x]", "[-a]", "[]a]"])
STARS = st.sampled_from(["*", "**", "**/", "?"])


def _seq(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(LITERAL, LITERAL, st.just("/"), CLASS, STARS, inner), max_size=6).map(
        "".join
    )


@st.composite
def braces(draw: st.DrawFn) -> str:
    # Framed by literals, alternatives that neither start nor end with `*`: brace expansion then
    # never glues stars or `**` + `/` across a brace boundary (the one documented difference).
    body = st.lists(LITERAL, min_size=1, max_size=2).map("".join)
    middle = st.lists(st.one_of(LITERAL, CLASS, st.just("?"), st.just("*")), max_size=3).map(
        "".join
    )
    alternatives = draw(st.lists(st.tuples(body, middle, body), min_size=1, max_size=3))
    return "a{" + ",".join(b + m + e for b, m, e in alternatives) + "}a"


ORDINARY = _seq(braces()).filter(lambda p: bool(p) and not p.startswith("/"))
PATHS = st.text(alphabet="ab.-x/", max_size=14)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=ORDINARY, paths=st.lists(PATHS, min_size=1, max_size=8))
def test_same_answers_as_the_regex_matcher_on_ordinary_globs(
    pattern: str, paths: list[str]
) -> None:
    for path in paths:
        assert new_match(pattern, path) is old_match(pattern, path), (pattern, path)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("**/*.tsx", "App.tsx"),
        ("**/*.tsx", "src/deep/App.tsx"),
        ("public/**/*", "public/a/b/c.png"),
        ("public/**", "public/"),
        ("web/**", "web/a/b"),
        ("a**b", "a/x/b"),  # `**` inside a segment still crosses `/`, as before
        ("a**/b", "ab"),
        ("*.{tsx,jsx}", "x.jsx"),
        ("src/{a,b{c,d}}/x", "src/bd/x"),
        ("[]]x", "]x"),
        ("[a-]", "-"),
        ("x/{}y", "x/y"),
        ("**/**/**/x", "x"),
    ],
)
def test_known_matches(pattern: str, path: str) -> None:
    assert new_match(pattern, path) and old_match(pattern, path)


def test_documented_differences_from_the_regex_matcher() -> None:
    assert old_match("img/[!x]", "img//") and not new_match("img/[!x]", "img//")  # never `/`
    assert old_match("{**,a}/b", "b") and not new_match("{**,a}/b", "b")  # `**/` written apart
    assert new_match("{**,a}/b", "x/y/b") and new_match("{**,a}/b", "a/b")
    with pytest.raises(GlobError):
        glob_set("a[/]b")  # `/` in a class


# --------------------------------------------------------------- limits and malformed globs
def test_a_brace_bomb_is_counted_not_expanded() -> None:
    started = time.monotonic()
    with pytest.raises(GlobError, match="more than 256 alternatives"):
        glob_set("{a,b}" * 26)  # 2^26 = 67 M
    with pytest.raises(GlobError, match="more than 256 alternatives"):
        glob_set("{" + ",".join("{a,b,c,d}" * 1 for _ in range(20)) + "}" + "{a,b,c,d}" * 4)
    assert time.monotonic() - started < 0.1
    assert glob_set("{a,b}" * 8).globs[0].alternatives == 256  # at the limit: allowed
    assert glob_set("{{a,b},{c,d}}{}").globs[0].alternatives == 4


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "/abs/*.tsx",
        "src/[z-a].tsx",
        "[",
        "a[b",
        "[!]",
        "[!]a]",
        "{a",
        "a}",
        "{a,{b}",
        "{" * 200,
        "a[/]b",
        "x" * (UI_RULES_MAX_GLOB_LENGTH + 1),
    ],
)
def test_malformed_or_oversized_globs_are_errors(pattern: str) -> None:
    with pytest.raises(GlobError):
        glob_set(pattern)


def test_rules_file_limits() -> None:
    def rules(ui: list[str], excludes: list[str] | None = None) -> bytes:
        return json.dumps({"schemaVersion": 1, "uiRules": ui, "excludes": excludes or []}).encode()

    assert parse_rules(rules(["*.tsx"] * UI_RULES_MAX_GLOBS), "f").include.globs
    with pytest.raises(UiRulesInvalid, match="101 globs"):
        parse_rules(rules(["*.tsx"] * 60, ["docs/**"] * 41), "f")
    assert parse_rules(rules(["a" * UI_RULES_MAX_GLOB_LENGTH]), "f").matches("a" * 256)
    with pytest.raises(UiRulesInvalid, match="257 characters"):
        parse_rules(rules(["a" * 257]), "f")
    with pytest.raises(UiRulesInvalid, match="reversed range"):
        parse_rules(rules(["*.tsx"], ["[z-a]"]), "f")


# --------------------------------------------------------------- linear time, bounded work
@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 240, False),
        ("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 240 + "b", True),
        ("**/" * 80 + "x.tsx", "a/" * 100 + "y.tsx", False),
        ("**/" * 80 + "x.tsx", "a/" * 100 + "x.tsx", True),
        ("*a" * 128, "a" * 100_000, True),
        ("**a" * 85 + "b", "a/" * 50_000, False),
    ],
)
def test_backtracking_globs_are_linear(pattern: str, path: str, expected: bool) -> None:
    started = time.monotonic()
    assert new_match(pattern, path) is expected
    assert time.monotonic() - started < 1.0


def test_a_small_dfa_cache_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = ["*a*b*c", "**/x{1,2,3}/**", "[a-c]?[!b]*"]
    paths = ["xaybzc", "q/x2/r/s", "abzd", "cab", "aaaa", "x1/y", "a/x3/b"]
    expected = {(p, q): new_match(p, q) for p in patterns for q in paths}
    monkeypatch.setattr(globs, "MAX_DFA_STATES", 3)
    for (pattern, path), answer in expected.items():
        assert new_match(pattern, path) is answer, (pattern, path)


def test_too_many_changed_paths_is_over_budget() -> None:
    rules = parse_rules(None, "default")
    changes = [ChangedPath("?", f"f{i}.py") for i in range(11)]
    assert matching_paths(rules, changes, max_paths=11) == []
    with pytest.raises(UiMatchBudgetExceeded, match="12 changed paths"):
        matching_paths(rules, [*changes, ChangedPath("?", "x.tsx")], max_paths=11)


def heaviest_legal_globs(seed: int = 7) -> list[str]:
    """100 globs of 256 characters, `*x*y*z…` over 8 letters: against random paths of those
    letters nearly every character is a new DFA state over a 25 600-state NFA (~0.3 s a path)."""
    rng = random.Random(seed)
    return [
        "".join("*" + rng.choice("abcdefgh") for _ in range(128)) for _ in range(UI_RULES_MAX_GLOBS)
    ]


def random_paths(count: int, seed: int = 8) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefgh") for _ in range(200)) for _ in range(count)]


def test_matching_stops_at_its_deadline() -> None:
    """The heaviest legal rules against many long paths: matching stops at the deadline
    instead of running on (the caller answers inconclusive)."""
    body = json.dumps({"schemaVersion": 1, "uiRules": heaviest_legal_globs()}).encode()
    rules = parse_rules(body, "heavy")
    assert all(len(g) == UI_RULES_MAX_GLOB_LENGTH for g in rules.include.patterns)
    changes = [ChangedPath("?", p) for p in random_paths(1000)]
    started = time.monotonic()
    with pytest.raises(UiMatchBudgetExceeded, match="deadline"):
        matching_paths(rules, changes, deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 1.0
    with pytest.raises(MatchBudgetExceeded):
        rules.include.matcher(deadline=time.monotonic() - 1).matches("abc")
