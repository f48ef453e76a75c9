"""Crash-safe file writes for the spool: atomic replace and durable append.

A reader (a restarted daemon) sees either the old or the new content of a file, never half of
one: data goes to a private temp file in the same directory, is fsynced, renamed over the
target with `os.replace`, and the directory entry is fsynced too.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` (mode 0600) next to `path`, fsync it, rename it over `path`, fsync the dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: object) -> None:
    """`atomic_write_bytes` of `data` as sorted JSON."""
    atomic_write_bytes(path, json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8"))


def append_json_line(path: Path, data: object) -> None:
    """Append one JSON line (mode 0600) and fsync it."""
    line = json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
