"""terragon_daemon_bundle: builds `dist/terragon-daemon.pyz` and checks it is current.

- `manifest`: what a bundle was built from (sources, envelope contract hash, versions)
- `builder`: the reproducible zipapp (`terragon-bundle build`)
- `check`: the parity check against the committed dist (`terragon-bundle check`)
- `cli`: the `terragon-bundle` command
"""

from __future__ import annotations

from terragon_daemon_bundle.builder import Bundle, build, render_bundle, write_bundle
from terragon_daemon_bundle.check import CheckResult, check, compare_manifests
from terragon_daemon_bundle.manifest import EnvelopeContract, current_contract

__all__ = [
    "Bundle",
    "CheckResult",
    "EnvelopeContract",
    "build",
    "check",
    "compare_manifests",
    "current_contract",
    "render_bundle",
    "write_bundle",
]
