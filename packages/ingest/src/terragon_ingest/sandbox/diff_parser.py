"""Parse `git diff --name-status -z` and `git status --porcelain -z` output into changed paths.

`-z` output is NUL-separated and never quoted, so names with spaces, newlines or non-ASCII bytes
arrive verbatim. Renames and copies carry a score (`R100`, `C075`) and two paths; both count as
changed (the old path was removed, the new one added).
"""

from __future__ import annotations

from dataclasses import dataclass


class DiffParseError(ValueError):
    """The git output does not follow the `-z` format."""


@dataclass(frozen=True, slots=True)
class ChangedPath:
    status: str
    """One letter: A, M, D, R, C, T, U, X, or `?` for untracked."""
    path: str
    old_path: str | None = None


def _decode(raw: bytes) -> str:
    # Git paths are bytes; keep undecodable names matchable instead of failing the whole diff.
    return raw.decode("utf-8", errors="surrogateescape")


def parse_name_status_z(output: bytes) -> list[ChangedPath]:
    """`git diff --name-status -z`: `STATUS\\0path\\0` or `R<score>\\0old\\0new\\0`."""
    fields = output.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    changes: list[ChangedPath] = []
    i = 0
    while i < len(fields):
        status = fields[i].decode("ascii", errors="replace")
        if not status or not status[0].isalpha():
            raise DiffParseError(f"unexpected status field {fields[i]!r} at {i}")
        letter = status[0]
        if letter in "RC":
            if i + 2 >= len(fields):
                raise DiffParseError(f"{letter} entry without two paths at {i}")
            changes.append(ChangedPath(letter, _decode(fields[i + 2]), _decode(fields[i + 1])))
            i += 3
        else:
            if i + 1 >= len(fields):
                raise DiffParseError(f"{letter} entry without a path at {i}")
            changes.append(ChangedPath(letter, _decode(fields[i + 1])))
            i += 2
    return changes


def parse_untracked_porcelain_z(output: bytes) -> list[ChangedPath]:
    """Untracked entries (`?? path`) of `git status --porcelain -z`; other entries are ignored
    (tracked changes come from `git diff`)."""
    changes: list[ChangedPath] = []
    entries = output.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        xy, path = entry[:2], entry[3:]
        if xy == b"??":
            changes.append(ChangedPath("?", _decode(path)))
        elif xy[:1] in (b"R", b"C"):
            i += 1  # porcelain -z puts the rename source in the next field
    return changes
