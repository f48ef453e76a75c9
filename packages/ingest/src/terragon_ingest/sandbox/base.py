"""What every provider's reader shares: the sandbox reference, the reader protocol, the file cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from terragon_core import SandboxProvider
from terragon_ingest.sandbox.diff_parser import ChangedPath

MAX_FILE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SandboxRef:
    """What a reader needs to find a sandbox: its provider, id and checkout directory."""

    provider: SandboxProvider
    codesandbox_id: str
    repo_dir: str | None


class SandboxReader(Protocol):
    async def read_head_sha(self, sandbox: SandboxRef) -> str: ...

    async def changed_paths(
        self, sandbox: SandboxRef, base_sha: str | None
    ) -> list[ChangedPath]: ...

    async def read_file(self, sandbox: SandboxRef, path: str) -> bytes | None: ...
