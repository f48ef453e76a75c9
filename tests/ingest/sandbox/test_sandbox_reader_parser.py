"""Property tests for the `-z` diff parsers: whatever git can name, the parser returns verbatim."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)

# Any path git can print under -z: no NUL, not empty. Spaces, newlines, non-ASCII all allowed.
paths = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
simple = st.builds(lambda s, p: ChangedPath(s, p), st.sampled_from("AMDTUX"), paths)
moved = st.builds(lambda s, old, new: ChangedPath(s, new, old), st.sampled_from("RC"), paths, paths)
entries = st.lists(st.one_of(simple, moved), max_size=20)


def _name_status_z(changes: list[ChangedPath], scores: list[int]) -> bytes:
    out = b""
    for change, score in zip(changes, scores, strict=False):
        if change.old_path is not None:
            out += f"{change.status}{score:03d}".encode() + b"\0" + change.old_path.encode() + b"\0"
        else:
            out += change.status.encode() + b"\0"
        out += change.path.encode() + b"\0"
    return out


@settings(max_examples=300, deadline=None)
@given(entries, st.lists(st.integers(0, 100), min_size=20, max_size=20))
def test_name_status_round_trip(changes: list[ChangedPath], scores: list[int]) -> None:
    assert parse_name_status_z(_name_status_z(changes, scores)) == changes


@settings(max_examples=200, deadline=None)
@given(st.lists(paths, max_size=10), st.lists(st.tuples(paths, paths), max_size=5))
def test_porcelain_keeps_only_untracked(
    untracked: list[str], renames: list[tuple[str, str]]
) -> None:
    raw = b""
    for new, old in renames:  # porcelain -z: "R  new\0old\0"
        raw += b"R  " + new.encode() + b"\0" + old.encode() + b"\0"
    for path in untracked:
        raw += b"?? " + path.encode() + b"\0"
        raw += b" M " + path.encode() + b"\0"
    assert parse_untracked_porcelain_z(raw) == [ChangedPath("?", p) for p in untracked]
