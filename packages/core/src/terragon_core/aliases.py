"""`codesandboxId` ↔ `sandboxInstanceId`: the only place the alias is spelled (CONTRACT §1).

The database and the wire say `codesandboxId`; the service layer may say `sandboxInstanceId`.
Conversions go through these two helpers so the names can never drift apart.
"""

from __future__ import annotations

from typing import NewType

CodesandboxId = NewType("CodesandboxId", str)
SandboxInstanceId = NewType("SandboxInstanceId", str)


def to_sandbox_instance_id(codesandbox_id: str) -> SandboxInstanceId:
    """Wire/DB id → service-layer id."""
    if not codesandbox_id:
        raise ValueError("codesandboxId must be a non-empty string")
    return SandboxInstanceId(codesandbox_id)


def to_codesandbox_id(sandbox_instance_id: str) -> CodesandboxId:
    """Service-layer id → wire/DB id."""
    if not sandbox_instance_id:
        raise ValueError("sandboxInstanceId must be a non-empty string")
    return CodesandboxId(sandbox_instance_id)
