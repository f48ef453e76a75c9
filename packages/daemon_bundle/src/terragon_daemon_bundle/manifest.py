"""The bundle manifest: what a `terragon-daemon.pyz` was built from.

It names the daemon version, the envelope contract the daemon speaks (version and the sha256 of
the canonical JSON of `terragon_core.envelope_json_schema()`), and the sha256 of every source
file. It is embedded in the zipapp and written beside it as `dist/manifest.json`, and it is what
`terragon-bundle check` compares to tell "sources changed" from "contract changed" from
"dist edited by hand".
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

import terragon_core

BUNDLE_FORMAT: Final = 1
"""Bump when the builder's output changes for the same sources (layout, entry point, ...)."""
BUNDLE_NAME: Final = "terragon-daemon"
ENTRY_POINT: Final = "terragon_daemon.cli:main"
REQUIRES_PYTHON: Final = ">=3.10"


@dataclass(frozen=True)
class EnvelopeContract:
    """The envelope contract a build embeds; tests pass a different one to simulate drift."""

    version: int
    schema_sha256: str


def canonical_json(data: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes a hash is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def current_contract() -> EnvelopeContract:
    """The contract `terragon_core` defines right now."""
    schema = canonical_json(terragon_core.envelope_json_schema())
    return EnvelopeContract(
        version=terragon_core.ENVELOPE_CONTRACT_VERSION,
        schema_sha256=hashlib.sha256(schema).hexdigest(),
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_version(init_source: bytes) -> str:
    """`__version__` from the daemon's `__init__.py`, read without importing it."""
    for node in ast.parse(init_source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise ValueError("terragon_daemon/__init__.py has no literal __version__")


def build_manifest(sources: dict[str, bytes], contract: EnvelopeContract) -> dict[str, Any]:
    """The manifest for `sources` (archive name → bytes)."""
    return {
        "name": BUNDLE_NAME,
        "bundleFormat": BUNDLE_FORMAT,
        "daemonVersion": read_version(sources["terragon_daemon/__init__.py"]),
        "entryPoint": ENTRY_POINT,
        "requiresPython": REQUIRES_PYTHON,
        "envelopeContractVersion": contract.version,
        "envelopeSchemaSha256": contract.schema_sha256,
        "sources": {name: sha256_hex(data) for name, data in sorted(sources.items())},
    }


def render_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest file's exact bytes: indented, sorted, newline-terminated."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
