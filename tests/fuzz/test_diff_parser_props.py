"""Hypothesis over the `git diff --name-status -z` / `git status --porcelain -z` parsers:
parse(format(changes)) == changes for arbitrary names (spaces, newlines, non-ASCII, bytes that
are not UTF-8), and garbage raises `DiffParseError` or parses, never anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    DiffParseError,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)
from tests.fuzz.conftest import FUZZ

# Git paths are bytes without NUL; the parser maps them to str with surrogateescape.
raw_names = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b)
text_names = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1, max_size=40
).map(lambda s: s.encode("utf-8"))
names = (
    raw_names | text_names | st.sampled_from([b" ", b"a b", b"new\nline", "naïve ☃".encode()])
).map(lambda b: b.decode("utf-8", errors="surrogateescape"))


@st.composite
def changes(draw: st.DrawFn) -> ChangedPath:
    letter = draw(st.sampled_from("AMDTUXRC"))
    if letter in "RC":
        return ChangedPath(letter, draw(names), draw(names))
    return ChangedPath(letter, draw(names))


def _encode(name: str) -> bytes:
    return name.encode("utf-8", errors="surrogateescape")


def format_name_status_z(items: list[ChangedPath], scores: list[int]) -> bytes:
    out = b""
    for item, score in zip(items, scores, strict=True):
        if item.status in "RC":
            assert item.old_path is not None
            out += f"{item.status}{score:03d}".encode() + b"\0" + _encode(item.old_path) + b"\0"
        else:
            out += item.status.encode() + b"\0"
        out += _encode(item.path) + b"\0"
    return out


@FUZZ
@given(
    st.lists(changes(), max_size=12).flatmap(
        lambda items: st.tuples(
            st.just(items), st.lists(st.integers(0, 100), min_size=len(items), max_size=len(items))
        )
    )
)
def test_name_status_round_trips(case: tuple[list[ChangedPath], list[int]]) -> None:
    items, scores = case
    assert parse_name_status_z(format_name_status_z(items, scores)) == items


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["??", " M", "M ", "A ", "R ", "C "]), names, names), max_size=12
    )
)
def test_untracked_porcelain_round_trips(entries: list[tuple[str, str, str]]) -> None:
    raw = b""
    for xy, path, source in entries:
        raw += xy.encode() + b" " + _encode(path) + b"\0"
        if xy[0] in "RC":
            raw += _encode(source) + b"\0"
    expected = [ChangedPath("?", path) for xy, path, _ in entries if xy == "??"]
    assert parse_untracked_porcelain_z(raw) == expected


@FUZZ
@given(st.binary(max_size=300))
def test_garbage_is_parsed_or_rejected_cleanly(raw: bytes) -> None:
    try:
        result = parse_name_status_z(raw)
    except DiffParseError:
        pass
    else:
        assert all(isinstance(c, ChangedPath) for c in result)
    assert all(isinstance(c, ChangedPath) for c in parse_untracked_porcelain_z(raw))
