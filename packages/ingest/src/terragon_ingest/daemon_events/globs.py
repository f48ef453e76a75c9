"""UI-rule globs, read as untrusted input: parsed with limits, matched in time linear in the path.

A rules file comes from the sandbox (CONTRACT §4), so a glob is parsed, never expanded and never
turned into a backtracking regex (`*a*a*…*b` as a Python regex never finishes on 240 `a`s, and
`{a,b}` 26 times expands to 67 M patterns). Instead:

- `parse_glob` reads the pattern into items, counting brace alternatives as a product without
  expanding them (over the limit → `GlobError`), and rejects malformed globs.
- `GlobSet` compiles a list of globs into one NFA (size linear in the total pattern length: brace
  alternatives share their tail) and `GlobSet.matcher()` simulates it with a lazily built DFA: each
  path character costs one dict lookup once its transition is known, and at most one NFA step
  (bounded by the NFA's size) when it is new. No backtracking, ever. A matcher has its own cache,
  so matchers are cheap to make and safe to use from one thread each.

Syntax (what the regex-based matcher accepted, same meaning): `**/` zero or more directories,
`**` anything (`/` included), `*` and `?` inside one path segment, `[abc]` / `[a-z]` / `[!abc]`
classes, `{a,b}` alternation (nested allowed, `{}` and `{a}` allowed). A match is on the whole path.
Deliberate differences from the regex version, each on a malformed or unusual glob:
- a class never matches `/` (the regex version's `[!x]` did) and may not contain `/`;
- a class is one item: braces and commas inside `[...]` are literal characters;
- `**/` is recognised where it is written together (`{**,a}/b` is `**` or `a`, then `/b`);
- reversed ranges (`[z-a]`), empty negated classes (`[!]`), unclosed `[`, unbalanced braces,
  empty and absolute globs are errors (the regex version raised `re.error` or accepted some).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

SLASH = "/"


class GlobError(ValueError):
    """A glob is malformed or over a limit."""


class MatchBudgetExceeded(Exception):
    """Matching ran past its deadline: the answer is unknown (which is not "no match")."""


# ----------------------------------------------------------------------------- items
# One item of a parsed glob. Tuples keep the parse cheap and hashable:
#   ("c", ch)                 one literal character
#   ("?",)                    any one character but `/`
#   ("[", negated, ranges)    a class: ranges is a tuple of (lo, hi) characters
#   ("*",)                    any run of characters without `/`
#   ("**",)                   any run of characters
#   ("**/",)                  empty, or any run of characters ending in `/`
#   ("{", (seq, seq, ...))    alternation; each seq is a tuple of items
Item = tuple[object, ...]
Seq = tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Glob:
    pattern: str
    items: Seq
    alternatives: int
    """How many patterns brace expansion would produce (capped at the limit + 1)."""


def parse_glob(pattern: str, *, max_length: int, max_alternatives: int) -> Glob:
    """Parse `pattern`; `GlobError` when it is empty, absolute, too long, malformed, or expands
    to more than `max_alternatives` patterns (counted, never expanded)."""
    if not pattern:
        raise GlobError("a glob must not be empty")
    if len(pattern) > max_length:
        raise GlobError(f"glob is {len(pattern)} characters, over the limit of {max_length}")
    if pattern.startswith(SLASH):
        raise GlobError(f"glob {pattern!r} must be repo-relative (no leading '/')")
    parser = _Parser(pattern, max_alternatives)
    items, end = parser.seq(0, in_braces=False)
    if end != len(pattern):  # only a stray '}' stops the top level early
        raise GlobError(f"unbalanced braces in glob {pattern!r}")
    count = _count(items, max_alternatives)
    if count > max_alternatives:
        raise GlobError(f"glob {pattern!r} expands to more than {max_alternatives} alternatives")
    return Glob(pattern, items, count)


class _Parser:
    def __init__(self, pattern: str, max_alternatives: int) -> None:
        self.p = pattern
        self.max_alternatives = max_alternatives

    def seq(self, i: int, *, in_braces: bool) -> tuple[Seq, int]:
        p, n = self.p, len(self.p)
        items: list[Item] = []
        while i < n:
            ch = p[i]
            if ch == "}":
                if not in_braces:
                    raise GlobError(f"unbalanced braces in glob {p!r}")
                break
            if ch == "," and in_braces:
                break
            if ch == "{":
                alternatives: list[Seq] = []
                i += 1
                while True:
                    alt, i = self.seq(i, in_braces=True)
                    alternatives.append(alt)
                    if i >= n:
                        raise GlobError(f"unbalanced braces in glob {p!r}")
                    i += 1
                    if p[i - 1] == "}":
                        break
                items.append(("{", tuple(alternatives)))
            elif ch == "*":
                if p.startswith("**/", i):
                    items.append(("**/",))
                    i += 3
                elif p.startswith("**", i):
                    items.append(("**",))
                    i += 2
                else:
                    items.append(("*",))
                    i += 1
            elif ch == "?":
                items.append(("?",))
                i += 1
            elif ch == "[":
                item, i = self.char_class(i)
                items.append(item)
            else:
                items.append(("c", ch))
                i += 1
        return tuple(items), i

    def char_class(self, i: int) -> tuple[Item, int]:
        # As before: the character right after `[` always belongs to the body (so `[]]` is a
        # class of `]`), the body runs to the next `]`, a leading `!` negates.
        p = self.p
        end = p.find("]", i + 2)
        if end == -1:
            raise GlobError(f"unclosed character class in glob {p!r}")
        body = p[i + 1 : end]
        negated = body.startswith("!")
        if negated:
            body = body[1:]
        if not body:
            raise GlobError(f"empty character class in glob {p!r}")
        if SLASH in body:
            raise GlobError(f"'/' cannot be in a character class (glob {p!r})")
        ranges: list[tuple[str, str]] = []
        j = 0
        while j < len(body):
            lo = body[j]
            if j + 2 < len(body) and body[j + 1] == "-":
                hi = body[j + 2]
                if hi < lo:
                    raise GlobError(f"reversed range {lo}-{hi} in glob {p!r}")
                ranges.append((lo, hi))
                j += 3
            else:
                ranges.append((lo, lo))
                j += 1
        return ("[", negated, tuple(ranges)), end + 1


def _count(items: Seq, limit: int) -> int:
    """Brace alternatives of a sequence: the product over its items (sum inside one brace),
    saturated at `limit + 1` so a bomb costs no big-number arithmetic."""
    total = 1
    for item in items:
        if item[0] == "{":
            alternatives = item[1]
            assert isinstance(alternatives, tuple)
            options = 0
            for alt in alternatives:
                options = min(options + _count(alt, limit), limit + 1)
            total = min(total * options, limit + 1)
    return total


# ----------------------------------------------------------------------------- NFA
_EPS, _CHAR, _NOT_SLASH, _ANY, _CLASS = range(5)


class _Nfa:
    """States in parallel lists. A state consumes one character (kind != _EPS; on a match it
    goes to `out`) and/or has epsilon edges (`eps`). State 0 accepts."""

    def __init__(self) -> None:
        self.kind: list[int] = [_EPS]
        self.arg: list[object] = [None]
        self.out: list[int] = [-1]
        self.eps: list[list[int]] = [[]]

    def add(
        self, kind: int, arg: object = None, out: int = -1, eps: list[int] | None = None
    ) -> int:
        self.kind.append(kind)
        self.arg.append(arg)
        self.out.append(out)
        self.eps.append(eps if eps is not None else [])
        return len(self.kind) - 1

    def seq(self, items: Seq, nxt: int) -> int:
        """Build `items` in front of state `nxt`; return the entry state."""
        for item in reversed(items):
            tag = item[0]
            if tag == "c":
                nxt = self.add(_CHAR, item[1], nxt)
            elif tag == "?":
                nxt = self.add(_NOT_SLASH, None, nxt)
            elif tag == "[":
                nxt = self.add(_CLASS, (item[1], item[2]), nxt)
            elif tag == "*":
                loop = self.add(_NOT_SLASH, None, -1, [nxt])
                self.out[loop] = loop
                nxt = loop
            elif tag == "**":
                loop = self.add(_ANY, None, -1, [nxt])
                self.out[loop] = loop
                nxt = loop
            elif tag == "**/":
                slash = self.add(_CHAR, SLASH, nxt)
                loop = self.add(_ANY, None, -1, [slash])
                self.out[loop] = loop
                nxt = self.add(_EPS, None, -1, [nxt, loop])
            else:  # "{": every alternative leads to the same tail: no copy, linear size
                alternatives = item[1]
                assert isinstance(alternatives, tuple)
                nxt = self.add(_EPS, None, -1, [self.seq(alt, nxt) for alt in alternatives])
        return nxt

    def consumes(self, state: int, ch: str) -> bool:
        kind = self.kind[state]
        if kind == _CHAR:
            return self.arg[state] == ch
        if kind == _NOT_SLASH:
            return ch != SLASH
        if kind == _ANY:
            return True
        if kind == _CLASS:
            if ch == SLASH:
                return False
            negated, ranges = self.arg[state]  # type: ignore[misc]
            inside = any(lo <= ch <= hi for lo, hi in ranges)
            return inside != negated
        return False

    def closure(self, states: set[int] | list[int]) -> frozenset[int]:
        """The consuming states and the accept state reachable by epsilon edges."""
        seen: set[int] = set()
        stack = list(states)
        result: set[int] = set()
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if self.kind[s] != _EPS or s == 0:
                result.add(s)
            stack.extend(self.eps[s])
        return frozenset(result)


class GlobSet:
    """Globs compiled into one NFA; `matcher()` answers "does any of them match this path"."""

    def __init__(self, globs: list[Glob] | tuple[Glob, ...]) -> None:
        self.globs = tuple(globs)
        self._nfa = _Nfa()
        entries = [self._nfa.seq(g.items, 0) for g in self.globs]
        self._start = self._nfa.closure(entries)

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(g.pattern for g in self.globs)

    def matcher(self, deadline: float | None = None) -> GlobMatcher:
        return GlobMatcher(self._nfa, self._start, deadline)


MAX_DFA_STATES = 4096
"""DFA states kept per matcher; past this the cache restarts (memory stays bounded, time linear)."""


class GlobMatcher:
    """A lazily built DFA over a `GlobSet`'s NFA. One per thread (the cache is not locked)."""

    def __init__(self, nfa: _Nfa, start: frozenset[int], deadline: float | None) -> None:
        self._nfa = nfa
        self._start_set = start
        self._deadline = deadline
        self._owner = threading.get_ident()
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._accepting: list[bool] = []
        self._trans: list[dict[str, int]] = []
        self._dead = self._state(frozenset())
        self._start = self._state(self._start_set)

    def _state(self, states: frozenset[int]) -> int:
        found = self._ids.get(states)
        if found is not None:
            return found
        sid = len(self._sets)
        self._ids[states] = sid
        self._sets.append(states)
        self._accepting.append(0 in states)
        self._trans.append({})
        return sid

    def _step(self, sid: int, ch: str) -> int:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise MatchBudgetExceeded("glob matching ran past its deadline")
        nfa = self._nfa
        targets = [nfa.out[s] for s in self._sets[sid] if nfa.consumes(s, ch)]
        nxt = nfa.closure(targets)
        if nxt not in self._ids and len(self._sets) >= MAX_DFA_STATES:
            self._reset()
            return self._state(nxt)  # the old ids are gone; the caller only uses the new one
        target = self._state(nxt)
        self._trans[sid][ch] = target
        return target

    def matches(self, path: str) -> bool:
        assert threading.get_ident() == self._owner, "a GlobMatcher is used by one thread"
        sid = self._start
        dead = self._dead
        for ch in path:
            nxt = self._trans[sid].get(ch)
            if nxt is None:
                nxt = self._step(sid, ch)
                dead = self._dead  # a reset renumbers the states
            sid = nxt
            if sid == dead:
                return False
        return self._accepting[sid]
