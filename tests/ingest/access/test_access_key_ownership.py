"""Who writes and deletes repo-access keys, proven over the source tree (AST + text).

- Only `access/cache.py` (writes, via its populate script) and `access/invalidation.py`
  (deletes) name the access-key builder or prefix.
- `cache.py` calls no Valkey delete; the only `DEL` in its scripts targets the fill lock.
- Every other module of `terragon_ingest` never spells the key prefix.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import terragon_ingest
from terragon_core import REPO_ACCESS_KEY_PREFIX, repo_access_key

ROOT = Path(terragon_ingest.__file__).parent
OWNERS = {"access/cache.py", "access/invalidation.py"}
DELETE_CALLS = {"delete", "unlink", "getdel", "expire", "pexpire", "persist", "flushdb"}


def _modules() -> dict[str, ast.Module]:
    return {
        str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted(ROOT.rglob("*.py"))
    }


def _names(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.asname or node.name)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "repo-access:" in node.value
        ):
            found.add("<prefix literal>")
    return found


def test_the_key_is_the_contract_string() -> None:
    assert repo_access_key("prod", "u-1", "acme/web") == (
        "terragon:v1:preview:repo-access:prod:u-1:acme/web"
    )
    assert REPO_ACCESS_KEY_PREFIX == "terragon:v1:preview:repo-access"


def test_only_the_cache_and_the_invalidation_helper_name_access_keys() -> None:
    markers = {"repo_access_key", "REPO_ACCESS_KEY_PREFIX", "<prefix literal>"}
    users = {path for path, tree in _modules().items() if _names(tree) & markers}
    assert users == OWNERS


def test_only_the_invalidation_helper_deletes_keys_of_the_cache() -> None:
    for path in ("access/cache.py", "access/invalidation.py"):
        tree = _modules()[path]
        calls = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        if path == "access/cache.py":
            assert not calls & DELETE_CALLS, f"{path} must not delete: {calls & DELETE_CALLS}"
        else:
            assert "delete" in calls


def test_the_cache_scripts_delete_only_the_fill_lock() -> None:
    tree = _modules()["access/cache.py"]
    scripts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and "redis.call" in node.value
    ]
    assert scripts, "the cache's Lua scripts were not found"
    deletions = [m for s in scripts for m in re.findall(r"'(DEL|UNLINK|GETDEL)', (KEYS\[\d\])", s)]
    # KEYS[4] of the populate script is the lock key (see its header comment in cache.py).
    assert deletions == [("DEL", "KEYS[4]")]
    source = (ROOT / "access/cache.py").read_text()
    assert "# KEYS: access key, generation key, index key, lock key." in source
