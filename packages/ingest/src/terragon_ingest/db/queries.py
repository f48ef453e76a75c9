"""Load a domain's `queries.sql` (one `-- name: query_name` header per query) into a dict.

Only `repository.py` modules execute SQL; they load their queries once at import time, so psycopg's
`LiteralString` typing holds and every statement has one findable home.
"""

from __future__ import annotations

from importlib import resources
from typing import LiteralString, cast


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, LiteralString]:
    text = (resources.files(package) / filename).read_text(encoding="utf-8")
    queries: dict[str, LiteralString] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name is not None:
                queries[name] = cast("LiteralString", "\n".join(lines).strip())
            name = line.removeprefix("-- name:").strip()
            lines = []
        elif name is not None:
            lines.append(line)
    if name is not None:
        queries[name] = cast("LiteralString", "\n".join(lines).strip())
    return queries
