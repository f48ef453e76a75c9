"""`terragon-bundle check`: is the committed `dist/` exactly what the sources build?

It rebuilds into a temporary directory and compares. On drift it says which kind:

- `source file X changed without rebuild` (also `added` / `removed`): the daemon source moved on;
- `core envelope contract changed (schema hash A != B)`: `terragon_core`'s envelope changed, so
  the daemon must be reviewed against it and rebuilt;
- `dist edited by hand (...)`: the bytes differ although the manifest matches the sources.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terragon_daemon_bundle.builder import (
    DEFAULT_DIST_DIR,
    DEFAULT_SOURCE_DIR,
    EMBEDDED_MANIFEST,
    MANIFEST_NAME,
    PYZ_NAME,
    build,
)
from terragon_daemon_bundle.manifest import EnvelopeContract, sha256_hex


@dataclass
class CheckResult:
    """Problems found; empty means the committed dist is reproducible from the sources."""

    problems: list[str] = field(default_factory=list)
    pyz_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _short(digest: object) -> str:
    return str(digest)[:12] if digest else "none"


def compare_manifests(committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Name every difference between the committed manifest and a fresh one."""
    problems: list[str] = []
    old_sources: dict[str, str] = committed.get("sources") or {}
    new_sources: dict[str, str] = fresh["sources"]
    for name in sorted(set(old_sources) | set(new_sources)):
        if name not in old_sources:
            problems.append(f"source file {name} added without rebuild")
        elif name not in new_sources:
            problems.append(f"source file {name} removed without rebuild")
        elif old_sources[name] != new_sources[name]:
            problems.append(f"source file {name} changed without rebuild")
    old_hash = committed.get("envelopeSchemaSha256")
    new_hash = fresh["envelopeSchemaSha256"]
    if old_hash != new_hash:
        problems.append(
            f"core envelope contract changed (schema hash {_short(old_hash)} != {_short(new_hash)})"
        )
    old_version = committed.get("envelopeContractVersion")
    if old_version != fresh["envelopeContractVersion"]:
        problems.append(
            "core envelope contract changed "
            f"(contract version {old_version} != {fresh['envelopeContractVersion']})"
        )
    handled = {"sources", "envelopeSchemaSha256", "envelopeContractVersion"}
    for key in sorted((set(committed) | set(fresh)) - handled):
        if committed.get(key) != fresh.get(key):
            problems.append(
                f"manifest field {key} changed without rebuild "
                f"({committed.get(key)!r} != {fresh.get(key)!r})"
            )
    return problems


def check(
    dist_dir: Path = DEFAULT_DIST_DIR,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    contract: EnvelopeContract | None = None,
) -> CheckResult:
    """Rebuild in a temp dir and compare with `dist_dir` (never writes to `dist_dir`)."""
    result = CheckResult()
    pyz_path, manifest_path = dist_dir / PYZ_NAME, dist_dir / MANIFEST_NAME
    for path in (pyz_path, manifest_path):
        if not path.is_file():
            result.problems.append(f"dist/{path.name} missing: run `terragon-bundle build`")
    if not result.ok:
        return result
    committed_pyz = pyz_path.read_bytes()
    committed_manifest_bytes = manifest_path.read_bytes()
    result.pyz_sha256 = sha256_hex(committed_pyz)
    with tempfile.TemporaryDirectory(prefix="terragon-bundle-check-") as tmp:
        fresh = build(source_dir, Path(tmp), contract)
    try:
        with zipfile.ZipFile(pyz_path) as archive:
            embedded_bytes = archive.read(EMBEDDED_MANIFEST)
        embedded = json.loads(embedded_bytes)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        result.problems.append(f"dist edited by hand ({PYZ_NAME} is not a readable bundle: {exc})")
        return result
    if embedded_bytes != committed_manifest_bytes:
        result.problems.append(
            f"dist edited by hand (dist/{MANIFEST_NAME} differs from the manifest inside {PYZ_NAME})"
        )
    drift = compare_manifests(embedded, fresh.manifest)
    result.problems.extend(drift)
    if not drift and committed_pyz != fresh.pyz:
        result.problems.append(
            f"dist edited by hand (bytes differ but manifest matches sources: dist/{PYZ_NAME})"
        )
    return result
