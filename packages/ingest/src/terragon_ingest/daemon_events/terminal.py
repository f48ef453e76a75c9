"""What a terminal envelope needs from the sandbox, read through the read-only reader only.

- `diff_source_for`: the daemon's `endSha` against the sandbox's live HEAD. Equal → `sha`;
  different or unreadable → `working-tree-fallback` with the reason in `diffSourceContext`.
- `legacy_ui_outcome`: under legacy mode, the run's changed paths (since `runStartSha`) against
  the repo's UI rules → `inconclusive` (UI touched), `not_required`, or `inconclusive` +
  `ui_rules_invalid`. A sandbox that cannot be read is `inconclusive` too: unknown is not "no UI";
  so is a match over its budget (`UI_MATCH_MAX_PATHS`, `UI_MATCH_DEADLINE_SECONDS`). The rules
  are the sandbox's: parsing and matching run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from terragon_core import (
    UI_MATCH_DEADLINE_SECONDS,
    UI_RULES_INVALID_BLOCKING_REASON,
    UI_RULES_PATH,
    DiffSource,
    UiValidationOutcome,
)
from terragon_ingest.daemon_events.ui_rules import (
    UiMatchBudgetExceeded,
    UiRulesInvalid,
    matching_paths,
    parse_rules,
)
from terragon_ingest.sandbox.reader import (
    SandboxFileRefused,
    SandboxReadError,
    SandboxRef,
    reader_for,
)
from terragon_ingest.settings import SandboxSettings

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class DiffDecision:
    source: DiffSource
    context: str


@dataclass(frozen=True, slots=True)
class UiDecision:
    outcome: UiValidationOutcome
    blocking_reason: str | None
    detail: str


async def diff_source_for(
    sandbox: SandboxRef, end_sha: str | None, settings: SandboxSettings | None = None
) -> DiffDecision:
    if end_sha is None:
        return DiffDecision(
            DiffSource.WORKING_TREE_FALLBACK, "end_sha_missing: the envelope carries no endSha"
        )
    try:
        head = await reader_for(sandbox.provider, settings).read_head_sha(sandbox)
    except SandboxReadError as exc:
        return DiffDecision(DiffSource.WORKING_TREE_FALLBACK, f"head_unreadable: {exc}")
    if head.strip().lower() == end_sha.strip().lower():
        return DiffDecision(DiffSource.SHA, f"end_sha_matches_head: {head}")
    return DiffDecision(
        DiffSource.WORKING_TREE_FALLBACK,
        f"end_sha_differs: endSha {end_sha} != live HEAD {head}",
    )


async def legacy_ui_outcome(
    sandbox: SandboxRef, run_start_sha: str | None, settings: SandboxSettings | None = None
) -> UiDecision:
    decision = await _legacy_ui_outcome(sandbox, run_start_sha, settings)
    log.info(
        "legacy_ui_outcome",
        codesandbox_id=sandbox.codesandbox_id,
        outcome=decision.outcome.value,
        blocking_reason=decision.blocking_reason,
        detail=decision.detail[:500],
    )
    return decision


async def _legacy_ui_outcome(
    sandbox: SandboxRef, run_start_sha: str | None, settings: SandboxSettings | None
) -> UiDecision:
    reader = reader_for(sandbox.provider, settings)
    try:
        raw = await reader.read_file(sandbox, UI_RULES_PATH)
        rules = await asyncio.to_thread(parse_rules, raw, UI_RULES_PATH)
    except (UiRulesInvalid, SandboxFileRefused) as exc:  # a FIFO, a symlink… is no rules file
        log.warning(
            "ui_rules_invalid",
            codesandbox_id=sandbox.codesandbox_id,
            error=str(exc),
            hint=f"fix {UI_RULES_PATH} in the repo (schemaVersion 1, uiRules/excludes globs)",
        )
        return UiDecision(
            UiValidationOutcome.INCONCLUSIVE, UI_RULES_INVALID_BLOCKING_REASON, str(exc)
        )
    except SandboxReadError as exc:
        return UiDecision(UiValidationOutcome.INCONCLUSIVE, None, f"sandbox_unreadable: {exc}")
    if run_start_sha is None:
        return UiDecision(
            UiValidationOutcome.INCONCLUSIVE, None, "run_start_sha_unknown: cannot diff the run"
        )
    try:
        changes = await reader.changed_paths(sandbox, run_start_sha)
    except (SandboxReadError, ValueError) as exc:
        return UiDecision(UiValidationOutcome.INCONCLUSIVE, None, f"changes_unreadable: {exc}")
    deadline = time.monotonic() + UI_MATCH_DEADLINE_SECONDS
    try:
        # The thread stops by itself at the deadline: nothing is left running after the answer.
        hits = await asyncio.to_thread(matching_paths, rules, changes, deadline=deadline)
    except UiMatchBudgetExceeded as exc:
        log.warning(
            "ui_match_budget_exceeded",
            codesandbox_id=sandbox.codesandbox_id,
            error=str(exc),
            hint="the outcome is inconclusive; fewer changed paths or simpler uiRules decide it",
        )
        return UiDecision(UiValidationOutcome.INCONCLUSIVE, None, f"ui_match_over_budget: {exc}")
    if hits:
        return UiDecision(
            UiValidationOutcome.INCONCLUSIVE,
            None,
            f"ui_paths_changed: {hits[:5]!r} ({rules.source})",
        )
    return UiDecision(UiValidationOutcome.NOT_REQUIRED, None, f"no_ui_paths ({rules.source})")
