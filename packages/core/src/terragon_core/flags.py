"""Feature flags frozen per run (CONTRACT §2)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

import msgspec

from terragon_core.enums import FeatureFlagName

FLAG_DEFAULTS: Final = MappingProxyType(
    {
        # Previews are on unless an operator turns them off for a repo or user.
        FeatureFlagName.SANDBOX_PREVIEW: True,
        # Daemons in the field still speak v1: strict correlation is rolled out per repo/user.
        FeatureFlagName.DAEMON_RUN_ID_STRICT: False,
    }
)


class FrozenFlags(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """The effective flags of a run, captured once at run creation and never re-read."""

    sandbox_preview: bool
    daemon_run_id_strict: bool
    rollout_phase: int | None = None
