"""The daemon runs where only the standard library exists."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import terragon_daemon

BLOCKED = (
    "msgspec",
    "terragon_core",
    "terragon_ingest",
    "terragon_daemon_bundle",
    "click",
    "litestar",
    "psycopg",
    "valkey",
    "structlog",
    "httpx",
    "requests",
)
DAEMON_DIR = Path(terragon_daemon.__file__).parent


def _module_names() -> list[str]:
    return ["terragon_daemon"] + [
        f"terragon_daemon.{info.name}" for info in pkgutil.iter_modules([str(DAEMON_DIR)])
    ]


def test_every_module_imports_with_third_party_modules_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in BLOCKED:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    for name in [
        n for n in sys.modules if n == "terragon_daemon" or n.startswith("terragon_daemon.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    imported = [importlib.import_module(name) for name in _module_names()]
    assert len(imported) >= 10
    with pytest.raises(ImportError):
        importlib.import_module("msgspec")
    for name in [n for n in sys.modules if n.startswith("terragon_daemon.")]:
        monkeypatch.delitem(sys.modules, name)  # drop the copies; monkeypatch restores originals


def test_source_imports_only_stdlib_and_itself() -> None:
    foreign: list[str] = []
    for path in sorted(DAEMON_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            allowed = sys.stdlib_module_names | {"terragon_daemon", "__future__"}
            foreign += [f"{path.name}: {root}" for root in roots if root not in allowed]
    assert foreign == []
