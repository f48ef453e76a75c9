"""`git diff --name-status -z` / `git status --porcelain -z` parsing, including hostile names."""

from __future__ import annotations

import pytest

from terragon_ingest.sandbox.diff_parser import (
    ChangedPath,
    DiffParseError,
    parse_name_status_z,
    parse_untracked_porcelain_z,
)


def test_modified_added_deleted_and_renamed_with_score() -> None:
    raw = b"M\0src/app.tsx\0A\0new file.css\0D\0old\nline.md\0R087\0a/b.js\0a/c.jsx\0C100\0x.py\0y.py\0"
    assert parse_name_status_z(raw) == [
        ChangedPath("M", "src/app.tsx"),
        ChangedPath("A", "new file.css"),
        ChangedPath("D", "old\nline.md"),
        ChangedPath("R", "a/c.jsx", "a/b.js"),
        ChangedPath("C", "y.py", "x.py"),
    ]


def test_non_ascii_and_undecodable_names_survive() -> None:
    raw = "M\0docs/naïve ☃.mdx\0".encode() + b"A\0bad\xffname.tsx\0"
    changes = parse_name_status_z(raw)
    assert changes[0].path == "docs/naïve ☃.mdx"
    assert changes[1].path.endswith(".tsx")


def test_truncated_output_is_an_error() -> None:
    with pytest.raises(DiffParseError):
        parse_name_status_z(b"R100\0only-old\0")
    with pytest.raises(DiffParseError):
        parse_name_status_z(b"M\0")


def test_untracked_entries_from_porcelain() -> None:
    raw = b"?? public/logo.svg\0 M src/x.ts\0R  new.ts\0old.ts\0?? a b.css\0"
    assert parse_untracked_porcelain_z(raw) == [
        ChangedPath("?", "public/logo.svg"),
        ChangedPath("?", "a b.css"),
    ]
