"""The sandbox boundary (DESIGN "sandbox boundary audit"): the correlation path reaches sandboxes
only through the read-only reader, and the reader cannot reach the run-context writers."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import terragon_ingest.daemon_events

CORRELATION = Path(terragon_ingest.daemon_events.__file__).parent
READER_SIDE = ("terragon_ingest.sandbox.reader", "terragon_ingest.sandbox.diff_parser")


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_correlation_modules_use_only_the_sandbox_reader() -> None:
    for path in CORRELATION.glob("*.py"):
        sandbox = {m for m in _imported_modules(path) if m.startswith("terragon_ingest.sandbox")}
        allowed = {m for m in sandbox if m.startswith(READER_SIDE)}
        assert sandbox == allowed, f"{path.name} imports {sorted(sandbox - allowed)}"


def test_import_graph_keeps_the_boundary() -> None:
    graph = grimp.build_graph("terragon_ingest", "terragon_core")
    for reader in READER_SIDE:
        reachable = graph.find_upstream_modules(reader)
        forbidden = {
            m for m in reachable if m.startswith(("terragon_ingest.runs", "terragon_ingest.db"))
        }
        assert not forbidden, f"{reader} can reach {sorted(forbidden)}"
    for module in graph.find_children("terragon_ingest.daemon_events"):
        assert not graph.chain_exists(
            importer=module, imported="terragon_ingest.sandbox.delivery"
        ), module
    assert graph.chain_exists(
        importer="terragon_ingest.daemon_events.terminal", imported="terragon_ingest.sandbox.reader"
    )
