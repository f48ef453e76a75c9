"""Deciding one daemon envelope (CONTRACT §4). The rules are decided in one place, in the
contract's order: token → body shape → runId (missing / mismatch) → field limits → payload version
→ v2 fields → duplicate eventId → seq → terminal endSha → apply.

| rule | where |
|---|---|
| 1 token | `authenticate`, from the headers, before the body is read (no header → 401; a token this process has not seen resolve is looked up first: unknown → 401, expired / revoked → 401 with `code`, the body never read); then the SQL, the authority (the same lifetime rules: db/functions/terragon_daemon_token.sql) |
| 2 body shape | `decode_envelope` (core): wrong types, `threadId` / `threadChatId` / `runId` over 256 characters or holding a NUL → 400 |
| budget | `handle_delivery`: the token's run over its per-minute budget → 429 `rate_limited` (`budgets.py`; before the body when the run is known to be spent: `refuse_over_budget`); an envelope over a budget alone → `within_limits` false → `invalid_envelope` |
| everything else | SQL `terragon_ingest_envelope` (db/functions/terragon_ingest_envelope.sql; an ended run and rules 4 to 8 in `terragon_envelope_verdict.sql`) |

The service decides nothing else: it computes what the envelope alone says (`over_limit`,
`v2_fields_valid`, terminal / failure), and when the decision answers `needs_inputs` it gathers
what only it can (the sandbox's HEAD and UI outcome for a terminal batch, the legacy_mode row with
its payload offload) and asks again; the second call decides everything again. Then it writes the
quarantine row for a quarantine outcome and builds the reply.

An ordinary envelope costs one round trip (after its token's first); a retry or a reordered batch
writes nothing. Every entry point comes through `decide`: a delivery, the same delivery without
its messages when PostgreSQL cannot store them, and an operator's replay (`replay.py`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from terragon_core import (
    ENVELOPE_SEQ_MAX,
    CorrelationOutcome,
    DaemonEnvelope,
    EnvelopeError,
    EnvelopeStatus,
    QuarantineReason,
    SandboxProvider,
    SecurityReason,
    decode_envelope,
    fits_field,
    given,
    http_status_for,
    is_terminal,
    over_limit,
    scan_envelope,
    v2_fields_valid,
)
from terragon_ingest.daemon_events import quarantine, recording, repository
from terragon_ingest.daemon_events.quarantine import Dimensions
from terragon_ingest.daemon_events.repository import DecisionInput
from terragon_ingest.daemon_events.schemas import EnvelopeAck
from terragon_ingest.daemon_events.terminal import diff_source_for, legacy_ui_outcome
from terragon_ingest.db import connection
from terragon_ingest.errors import ServiceUnavailable
from terragon_ingest.runs import (
    TokenRefused,
    hash_token,
    record_missing_end_sha,
    resolve_daemon_token,
)
from terragon_ingest.sandbox.reader import SandboxRef

if TYPE_CHECKING:
    from terragon_core import QuarantineRecord
    from terragon_ingest.daemon_events.budgets import RunBudgets
    from terragon_ingest.daemon_events.deps import DaemonEventsDeps
    from terragon_ingest.daemon_events.group_commit import GroupCommit
    from terragon_ingest.daemon_events.repository import Decision
    from terragon_ingest.db import Pool
    from terragon_ingest.runs import KnownTokens, TokenBinding

log = structlog.get_logger()

Outcome = CorrelationOutcome


class Reply(msgspec.Struct, frozen=True):
    http_status: int
    ack: EnvelopeAck
    dims: Dimensions | None = None
    retry_after: int | None = None
    """Seconds for the `Retry-After` header of a 429 `rate_limited`."""


class Delivery(msgspec.Struct, frozen=True):
    """One envelope to decide, and who sent it: a daemon's token, or (an operator's replay) the
    run the stored envelope's token was minted for."""

    envelope: DaemonEnvelope
    body: bytes
    trace_id: str
    token_hash: bytes | None = None
    token_run_id: str | None = None
    replay_of: str | None = None
    """The quarantine id being replayed: the outcome is reported, no new row is written."""
    over_budget: str | None = None
    """Why the envelope alone exceeds its run's per-minute budget (`budgets.never_fits`): it is
    quarantined `invalid_envelope`, like an over-limit field."""


_UNAUTHORIZED = "missing or unknown X-Daemon-Token"
_REFUSED = {
    SecurityReason.EXPIRED: "the X-Daemon-Token expired: its run ended over an hour ago",
    SecurityReason.REVOKED: "the X-Daemon-Token was revoked: its thread was closed",
}
_FORBIDDEN = "the token is bound to another thread"
_RATE_LIMITED = "the run is over its per-minute budget; retry after Retry-After"


class Sender(msgspec.Struct, frozen=True):
    """A daemon whose token resolved: its digest (the SQL checks it again, the authority) and the
    run and thread it was minted for."""

    token_hash: bytes
    binding: TokenBinding


async def authenticate(deps: DaemonEventsDeps, token: str | None) -> Sender | Reply:
    """Rule 1, from the request's headers alone (`POST /api/daemon-event` calls it before it reads
    the body, CONTRACT §3/§4): the sender of a live token, or the 401 for a missing or unknown one
    (with `code` for an expired or revoked one): no body read, nothing decoded or written."""
    if not token:
        return _unauthorized()
    digest = hash_token(token)
    binding = await _known_token(deps.tokens, deps.pool, token, digest)
    if binding is None or isinstance(binding, TokenRefused):  # unknown, expired or revoked
        return _unauthorized(binding.code if binding is not None else None)
    return Sender(digest, binding)


def refuse_over_budget(
    budgets: RunBudgets | None, sender: Sender, content_length: int | None
) -> Reply | None:
    """Before the body is read: 429 when the sender's run is already known (in this process) to
    be over its budget for the window, or the declared body cannot fit what is left; else None."""
    if budgets is None:
        return None
    retry_after = budgets.refuse_early(sender.binding.run_id, content_length)
    return None if retry_after is None else _rate_limited(retry_after)


def _rate_limited(retry_after: int) -> Reply:
    ack = EnvelopeAck(EnvelopeStatus.RATE_LIMITED, error=_RATE_LIMITED)
    return Reply(429, ack, retry_after=retry_after)


async def handle_delivery(
    deps: DaemonEventsDeps, body: bytes, sender: Sender, trace_id: str
) -> Reply:
    """`POST /api/daemon-event` once `authenticate` accepted its token and the body was read
    under the size cap."""
    try:  # 2. body shape
        envelope = decode_envelope(body)
    except EnvelopeError as exc:
        return Reply(400, EnvelopeAck(EnvelopeStatus.INVALID, errors=[str(exc)]))
    over_budget = None
    budgets = deps.budgets
    run_id = sender.binding.run_id
    if budgets is not None:  # the run's budget: charged here, nothing stored when refused
        messages, size = len(envelope.messages), len(body)
        retry_after = budgets.admit(run_id, messages, size)
        if retry_after is not None:
            return _rate_limited(retry_after)
        over_budget = budgets.never_fits(messages, size)
    delivery = Delivery(
        envelope, body, trace_id, token_hash=sender.token_hash, over_budget=over_budget
    )
    try:
        return await decide(deps, delivery)
    except ServiceUnavailable:
        if budgets is not None:  # nothing was stored: the daemon's retry is charged instead
            budgets.refund(run_id, len(envelope.messages), len(body))
        raise


def _unauthorized(code: SecurityReason | None = None) -> Reply:
    """401 `unauthorized`; with `code` (expired / revoked) for a known token that no longer
    authenticates."""
    if code is None:
        return Reply(401, EnvelopeAck(EnvelopeStatus.UNAUTHORIZED, error=_UNAUTHORIZED))
    ack = EnvelopeAck(EnvelopeStatus.UNAUTHORIZED, code=code, error=_REFUSED[code])
    return Reply(http_status_for(code), ack)


async def _known_token(
    tokens: KnownTokens, pool: Pool, token: str, digest: bytes
) -> TokenBinding | TokenRefused | None:
    """The token's binding if it is live (from this process's memory, else one indexed lookup),
    why not if it expired or was revoked, None if unknown. Nothing of the body is read before
    this answers."""
    binding = tokens.get(digest)
    if binding is None:
        async with connection(pool) as conn:
            resolved = await resolve_daemon_token(conn, token)
        if isinstance(resolved, TokenRefused) or resolved is None:
            return resolved
        tokens.remember(digest, resolved)
        binding = resolved
    return binding


async def decide(deps: DaemonEventsDeps, delivery: Delivery) -> Reply:
    """Rules 1 (again, the authority) and 3 to 8, and the apply: see the module docstring."""
    envelope = delivery.envelope
    inputs = decision_input(delivery)
    # A body that spells a NUL may hold messages PostgreSQL refuses: decided alone, so that it
    # cannot fail a grouped statement and make its neighbours' batch run twice; a heavy one, so
    # that its cost is not added to a neighbour's batch.
    body = delivery.body
    alone = (
        _NUL_ESCAPE in body or len(body) > HEAVY_BYTES or len(envelope.messages) > HEAVY_MESSAGES
    )
    decision = await _ask(deps.pool, deps.group_commit, inputs, alone=alone)
    if decision.outcome is Outcome.NEEDS_INPUTS:
        inputs = msgspec.structs.replace(inputs, **await _gather(deps, delivery, decision))
        decision = await _ask(deps.pool, deps.group_commit, inputs, alone=alone)
    return await _conclude(deps, delivery, decision, inputs)


_NUL_ESCAPE = b"\\u0000"
HEAVY_BYTES = 256 * 1024
HEAVY_MESSAGES = 256
"""An envelope over either is a statement of its own under group commit (see `decide`)."""


async def _ask(
    pool: Pool,
    group: GroupCommit | None,
    inputs: DecisionInput,
    *,
    alone: bool,
) -> Decision:
    try:
        # Through the group commit's slots: an ordinary delivery's first call (not a replay, not
        # the call with inputs); `alone` as a statement of its own.
        first = inputs.token_hash is not None and not inputs.inputs_ready
        if group is not None and inputs.messages is not None and first:
            decision = await group.submit(inputs, alone=alone)
            if decision is not None:
                return decision
        async with connection(pool) as conn:  # alone
            return await repository.ingest_envelope(conn, inputs)
    except repository.UnstorablePayload:
        # PostgreSQL cannot store these messages (a `\u0000` in jsonb): the same decision
        # without them answers rules 1 to 3 and then `invalid_envelope`.
        async with connection(pool) as conn:
            return await repository.ingest_envelope(
                conn, msgspec.structs.replace(inputs, messages=None)
            )


def decision_input(delivery: Delivery) -> DecisionInput:
    """What the decision needs that the envelope alone says. Over-limit values are passed as NULL:
    PostgreSQL could not bind or index them, and `within_limits` already decides the envelope.
    (Public for tools/bench, whose grouped pgbench ceiling replays exactly these parameters.)"""
    envelope, body = delivery.envelope, delivery.body
    scan = scan_envelope(envelope)  # over_limit, is_terminal, is_failure: one pass
    within = delivery.over_budget is None and scan.fits
    event_id = given(envelope.event_id)
    return DecisionInput(
        token_hash=delivery.token_hash,
        token_run_id=delivery.token_run_id,
        thread_id=envelope.thread_id,
        thread_chat_id=envelope.thread_chat_id,
        run_id=given(envelope.run_id),
        dedupe_id=(event_id or _legacy_event_id(body)) if within else None,
        seq=_bounded_seq(envelope.seq),
        payload_version=envelope.payload_version,
        fields_valid=v2_fields_valid(envelope),
        within_limits=within,
        messages=envelope.messages if within else None,
        trace_id=delivery.trace_id,
        terminal=scan.terminal,
        failure=scan.failure,
        end_sha=given(envelope.end_sha) if within else None,
    )


async def _gather(deps: DaemonEventsDeps, delivery: Delivery, decision: Decision) -> dict[str, Any]:
    """What `needs_inputs` asks for: the sandbox reads of a terminal batch (through the read-only
    reader) and, for a legacy envelope, its legacy_mode row (a replay writes no new row)."""
    ctx = _Context.of(decision)
    terminal = is_terminal(delivery.envelope.messages)
    inputs: dict[str, Any] = {"inputs_ready": True}
    if terminal:
        diff = await diff_source_for(
            ctx.sandbox, given(delivery.envelope.end_sha), deps.settings.sandbox
        )
        inputs |= {"diff_source": diff.source.value, "diff_source_context": diff.context}
    if decision.legacy and terminal:
        ui = await legacy_ui_outcome(ctx.sandbox, decision.run_start_sha, deps.settings.sandbox)
        inputs |= {"ui_outcome": ui.outcome.value, "ui_blocking_reason": ui.blocking_reason}
    if decision.legacy and delivery.replay_of is None:
        inputs["legacy_row"] = await _row(
            deps, delivery, ctx, QuarantineReason.LEGACY_MODE, decision.token_run_id
        )
    return inputs


async def _conclude(
    deps: DaemonEventsDeps, delivery: Delivery, decision: Decision, inputs: DecisionInput
) -> Reply:
    """The reply for the decision's outcome, and the quarantine row of a quarantine outcome."""
    outcome = decision.outcome
    if outcome is Outcome.UNAUTHORIZED:
        return _unauthorized(decision.token_refusal)
    if outcome is Outcome.FORBIDDEN:
        return Reply(403, EnvelopeAck(EnvelopeStatus.FORBIDDEN, error=_FORBIDDEN))
    assert outcome is not Outcome.NEEDS_INPUTS, "the second call had every input"
    dims = _dimensions(decision)  # the sandbox and the rest of `_Context`: a quarantine's only
    # The run the envelope was decided for: its token's (rule 3), which for a late retry to an
    # ended, superseded run is not the active one. (A replay of an old row may name none.)
    target = decision.token_run_id or decision.active_run_id
    seen = {"run_id": target, "last_accepted_seq": decision.last_seq}
    if outcome is Outcome.APPLIED:
        legacy_row = inputs.legacy_row
        if legacy_row is not None and decision.legacy_row_id is not None:
            await recording.after_legacy_apply(deps, legacy_row, decision.legacy_row_id, dims)
        ack = EnvelopeAck(
            EnvelopeStatus.APPLIED,
            legacy_mode=bool(decision.legacy),
            applied_messages=decision.applied_messages,
            quarantine_id=decision.legacy_row_id,
            **seen,
        )
        return Reply(200, ack, dims)
    if outcome is Outcome.DUPLICATE:
        return Reply(202, EnvelopeAck(EnvelopeStatus.DUPLICATE, **seen), dims)
    if outcome is Outcome.STALE_SEQ:
        recording.log_stale_once(target or "", delivery.envelope.seq, decision.last_seq)
        return Reply(202, EnvelopeAck(EnvelopeStatus.STALE_SEQ, **seen), dims)
    ctx = _Context.of(decision, dims)
    reason = QuarantineReason(outcome.value)
    if reason is QuarantineReason.INVALID_ENVELOPE and not inputs.within_limits:
        log.info(
            "envelope_over_limit",
            thread_id=delivery.envelope.thread_id,
            reason=delivery.over_budget or over_limit(delivery.envelope),
            trace_id=delivery.trace_id,
        )
    if reason is QuarantineReason.MISSING_END_SHA and delivery.replay_of is None:
        assert target is not None
        await record_missing_end_sha(deps.pool, run_id=target)
    quarantine_id = delivery.replay_of
    if quarantine_id is None:
        row = await _row(deps, delivery, ctx, reason, decision.token_run_id)
        quarantine_id = await recording.record_quarantine(deps, row, dims=ctx.dims)
    ack = EnvelopeAck(EnvelopeStatus.QUARANTINED, reason=reason, quarantine_id=quarantine_id)
    return Reply(202, ack, ctx.dims)


class _Context(msgspec.Struct, frozen=True):
    """What a quarantine row and the sandbox reads need from the decision's context."""

    active_run_id: str | None
    strict: bool
    sandbox: SandboxRef
    dims: Dimensions

    @classmethod
    def of(cls, decision: Decision, dims: Dimensions | None = None) -> _Context:
        dims = _dimensions(decision) if dims is None else dims
        assert decision.sandbox_provider is not None
        provider = SandboxProvider(decision.sandbox_provider)
        sandbox = SandboxRef(provider, decision.codesandbox_id or "", decision.repo_dir)
        return cls(decision.active_run_id, bool(decision.run_id_strict), sandbox, dims)


def _dimensions(decision: Decision) -> Dimensions:
    assert decision.user_id is not None, "a live token always references its thread"
    assert decision.sandbox_provider is not None
    return Dimensions(
        decision.repo_full_name,
        decision.user_id,
        decision.sandbox_provider,
        decision.codesandbox_id,
    )


async def _row(
    deps: DaemonEventsDeps,
    delivery: Delivery,
    ctx: _Context,
    reason: QuarantineReason,
    token_run_id: str | None,
) -> QuarantineRecord:
    envelope = delivery.envelope
    event_id = given(envelope.event_id)
    return await quarantine.build_row(
        deps,
        body=delivery.body,
        reason=reason,
        thread_id=envelope.thread_id,
        thread_chat_id=envelope.thread_chat_id,
        run_id=given(envelope.run_id),
        active_run_id=ctx.active_run_id,
        token_run_id=token_run_id,
        strict=ctx.strict,
        payload_version=envelope.payload_version,
        # An over-limit eventId / seq (too long, a NUL) is kept in the payload, not in its column.
        event_id=event_id if event_id and fits_field(event_id) else None,
        seq=_bounded_seq(envelope.seq),
        trace_id=delivery.trace_id,
        dims=ctx.dims,
    )


def _bounded_seq(seq: int | None) -> int | None:
    """`seq` as PostgreSQL's bigint can hold it; outside (a hostile 2^70) → NULL."""
    return seq if seq is not None and -ENVELOPE_SEQ_MAX - 1 <= seq <= ENVELOPE_SEQ_MAX else None


def _legacy_event_id(body: bytes) -> str:
    """v1 envelopes carry no eventId: an exact resend of the same body is still a duplicate."""
    return "v1:" + hashlib.sha256(body).hexdigest()
