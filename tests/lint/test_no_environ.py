"""No module reads the environment but the settings modules (issue 25 item 3), an AST check in the
manner of polar's `server/scripts/linters`.

A read is `os.getenv(...)`, `os.environ.get(...)`, `os.environ[name]`, `name in os.environ`,
`.items()` / `.setdefault()` / `.pop()` …, or `from os import environ`: a setting belongs in its
deployable's settings object, declared with its type, default and meaning (the configuration table
is generated from them). Not reads, so allowed anywhere:

- writes: `os.environ[name] = value`, `del os.environ[name]`, `os.environ.update(...)` (what a
  process hands to the children it starts, e.g. `serve --workers`);
- a child process's environment built from ours as a whole: `dict(os.environ)`,
  `os.environ.copy()`, `os.environ | {...}`, `{**os.environ, ...}` (no variable of it is read here).

A line may opt out with `# lint-skip: environ, <why>` (e.g. `COLUMNS`, a terminal's convention).
Scanned: the shipped packages (`packages/*/src`, `apps/*/src`). Not scanned: `tools/` and `tests/`,
harnesses that set up the environment of the processes they start and read test-only switches
(`TERRAGON_TEST_*`) no operator sets.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULES = {
    "packages/core/src/terragon_core/env.py",
    "packages/ingest/src/terragon_ingest/settings.py",
    "apps/dashboard/src/terragon_dashboard/settings.py",
    "packages/daemon_bundle/src/terragon_daemon/settings.py",
}
SKIP = "# lint-skip: environ"
_READERS = {"environ", "environb", "getenv", "getenvb"}
_WRITES = {"update", "copy"}  # `copy`: the whole environment, for a child


def _allowed(node: ast.Attribute, parent: ast.AST | None, grandparent: ast.AST | None) -> bool:
    if node.attr in {"getenv", "getenvb"}:
        return False
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return isinstance(parent.ctx, ast.Store | ast.Del)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        return parent.attr in _WRITES and isinstance(grandparent, ast.Call)
    if isinstance(parent, ast.Call) and node in parent.args:
        return isinstance(parent.func, ast.Name) and parent.func.id == "dict"
    if isinstance(parent, ast.BinOp):
        return isinstance(parent.op, ast.BitOr)
    if isinstance(parent, ast.Dict):
        return any(k is None and v is node for k, v in zip(parent.keys, parent.values, strict=True))
    return False


def environ_reads(source: str) -> list[int]:
    """The lines of `source` that read the environment (see the module docstring)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            hit = any(alias.name in _READERS for alias in node.names)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in _READERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            parent = parents.get(node)
            hit = not _allowed(node, parent, parents.get(parent) if parent else None)
        else:
            continue
        if hit and SKIP not in lines[node.lineno - 1]:
            found.append(node.lineno)
    return sorted(found)


def _shipped_modules() -> list[Path]:
    roots = [*ROOT.glob("packages/*/src"), *ROOT.glob("apps/*/src")]
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_only_settings_modules_read_the_environment() -> None:
    offenders = [
        f"{rel}:{line}"
        for path in _shipped_modules()
        if (rel := str(path.relative_to(ROOT))) not in SETTINGS_MODULES
        for line in environ_reads(path.read_text())
    ]
    assert not offenders, (
        "the environment is read outside a settings module; declare the variable in its "
        "deployable's settings object (terragon_core.env.setting) and pass the value down:\n  "
        + "\n  ".join(offenders)
    )


def test_no_click_option_reads_the_environment_itself() -> None:
    """A click option's default comes from the settings (`default=env_var(Group, "FIELD").read`),
    never from `envvar=`: the variable is then declared, typed and in the table."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _shipped_modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and any(k.arg == "envvar" for k in node.keywords)
    ]
    assert not offenders, offenders


def test_the_settings_modules_exist() -> None:
    for rel in SETTINGS_MODULES:
        assert (ROOT / rel).is_file(), rel


def test_the_check_tells_reads_from_writes() -> None:
    reads = """
import os
from os import environ
a = os.environ.get("A")
b = os.getenv("B")
c = os.environ["C"]
d = "D" in os.environ
e = {k: v for k, v in os.environ.items()}
f = os.environ.setdefault("F", "1")
g = os.environ.pop("G", None)
"""
    assert environ_reads(reads) == [3, 4, 5, 6, 7, 8, 9, 10]
    writes = """
import os
os.environ["A"] = "1"
del os.environ["A"]
os.environ.update({"B": "2"})
child = dict(os.environ)
child = os.environ.copy()
child = os.environ | {"C": "3"}
child = {**os.environ, "D": "4"}
width = os.environ.get("COLUMNS")  # lint-skip: environ, a terminal's convention
"""
    assert environ_reads(writes) == []
