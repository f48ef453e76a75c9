"""The correlation decision for one daemon envelope, in CONTRACT §4's order; the first rule that
fires decides: token → body shape → runId (missing / mismatch) → payload version → v2 fields →
duplicate eventId → seq → terminal endSha → apply.

An ordinary envelope costs one round trip: `terragon_ingest_envelope` (migration
2026-11-26-1930_one_round_trip.sql). Where each rule is decided:

| rule | where |
|---|---|
| 1 token | `handle_delivery`, before the body is decoded: no header → 401; a token this process has not seen resolve is looked up first (unknown / revoked → 401, the body never decoded); the SQL checks it again (`terragon_ingest_envelope` "Rule 1") |
| 2 body shape | `handle_delivery`: `decode_envelope` (wrong types, `threadId` / `threadChatId` / `runId` over 256 characters → 400) |
| 2½ thread binding (403) | SQL `terragon_ingest_envelope` → `forbidden` (step by step: `_handle_in_steps`) |
| 3 runId missing / mismatch | `correlate` below, with the context the SQL returned (`decide`); the SQL only takes the trivial pass (runId = active run, batch not terminal). A runId-less envelope under a token of a run that is no longer active is that run's daemon: `mismatch`, never applied to the new run |
| field limits | `correlate`, right after rule 3 (`over_limit`: `eventId` / `endSha` / a message `uuid` over 128 characters, `seq` outside 1 … 2^63-1 → `invalid_envelope`); such an envelope never reaches the one-statement path, PostgreSQL could not bind or index it |
| 4-7 payload version, v2 fields, duplicate, seq | SQL `terragon_apply_envelope`, under the run lock |
| 8 terminal endSha | SQL `terragon_apply_envelope`; the sandbox HEAD is read in `correlate` (terminal batches always come back as `decide`) |
| apply | SQL `terragon_apply_envelope`: messages, dedupe record, seq CAS, run state, in one transaction |

So the duplicate and stale paths write nothing and return from the same one statement; the
quarantine, legacy and terminal paths add the work they need (rows, sandbox reads) in `correlate`.
A replay (`replay_of`) enters at `correlate` directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from terragon_core import (
    ENVELOPE_FIELD_MAX_CHARS,
    ENVELOPE_SEQ_MAX,
    DaemonEnvelope,
    EnvelopeError,
    EnvelopeStatus,
    QuarantineReason,
    SandboxProvider,
    decode_envelope,
    given,
    is_failure,
    is_terminal,
    over_limit,
    v2_fields_valid,
)
from terragon_ingest.daemon_events import quarantine, recording, repository
from terragon_ingest.daemon_events.quarantine import Dimensions
from terragon_ingest.daemon_events.schemas import EnvelopeAck
from terragon_ingest.daemon_events.terminal import diff_source_for, legacy_ui_outcome
from terragon_ingest.db import connection
from terragon_ingest.runs.service import record_missing_end_sha
from terragon_ingest.runs.tokens import TokenBinding, hash_token, resolve_daemon_token
from terragon_ingest.sandbox.reader import SandboxRef

if TYPE_CHECKING:
    from terragon_ingest.services import Services

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Reply:
    http_status: int
    ack: EnvelopeAck
    dims: Dimensions | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """The pointer and frozen snapshot one envelope is decided against."""

    active_run_id: str | None
    strict: bool
    run_start_sha: str | None
    sandbox: SandboxRef
    dims: Dimensions


_UNAUTHORIZED = "missing, unknown or revoked X-Daemon-Token"
_FORBIDDEN = "the token is bound to another thread"


async def handle_delivery(
    services: Services, body: bytes, token: str | None, trace_id: str
) -> Reply:
    """`POST /api/daemon-event` after the body was read under the size cap."""
    if not token or await _known_token(services, token) is None:  # 1. token, before the body
        return Reply(401, EnvelopeAck(EnvelopeStatus.UNAUTHORIZED, error=_UNAUTHORIZED))
    try:  # 2. body shape
        envelope = decode_envelope(body)
    except EnvelopeError as exc:
        return Reply(400, EnvelopeAck(EnvelopeStatus.INVALID, errors=[str(exc)]))
    if over_limit(envelope) is not None:  # decided in `correlate`, after rule 3; never bound in SQL
        return await _handle_in_steps(services, body, envelope, token, trace_id)
    params = _apply_params(envelope, body, trace_id)
    try:  # 1 again, 2½ and the context; 4-8 and the apply when rule 3 passes trivially
        async with connection(services.pool) as conn:
            row = await repository.ingest_envelope(
                conn, hash_token(token), params, envelope.messages
            )
    except repository.UnstorablePayload:  # step by step: quarantined as invalid_envelope
        return await _handle_in_steps(services, body, envelope, token, trace_id)
    outcome = row["outcome"]
    if outcome == "unauthorized":
        return Reply(401, EnvelopeAck(EnvelopeStatus.UNAUTHORIZED, error=_UNAUTHORIZED))
    if outcome == "forbidden":
        return Reply(403, EnvelopeAck(EnvelopeStatus.FORBIDDEN, error=_FORBIDDEN))
    ctx = _context(row)
    if outcome == "decide":
        return await correlate(services, body, envelope, row["token_run_id"], trace_id, ctx=ctx)
    case = _Case(services, ctx, envelope, body, trace_id, None, row["token_run_id"])
    return await _conclude(case, params["run_id"], repository.apply_result(row))


async def _known_token(services: Services, token: str) -> TokenBinding | None:
    """The token's binding if it is live: from this process's memory, else one indexed lookup.
    Nothing of the body is decoded or stored before this answers."""
    digest = hash_token(token)
    binding = services.tokens.get(digest)
    if binding is None:
        async with connection(services.pool) as conn:
            binding = await resolve_daemon_token(conn, token)
        if binding is not None:
            services.tokens.remember(digest, binding)
    return binding


async def _handle_in_steps(
    services: Services, body: bytes, envelope: DaemonEnvelope, token: str, trace_id: str
) -> Reply:
    """The same decision one round trip at a time (token, context, apply), for an envelope the
    one-statement path cannot take: a field over its limit, or messages not storable as jsonb."""
    async with connection(services.pool) as conn:
        binding = await resolve_daemon_token(conn, token)
    if binding is None:
        return Reply(401, EnvelopeAck(EnvelopeStatus.UNAUTHORIZED, error=_UNAUTHORIZED))
    if envelope.thread_id != binding.thread_id:
        return Reply(403, EnvelopeAck(EnvelopeStatus.FORBIDDEN, error=_FORBIDDEN))
    return await correlate(services, body, envelope, binding.run_id, trace_id)


def _apply_params(envelope: DaemonEnvelope, body: bytes, trace_id: str) -> dict[str, Any]:
    """What the apply needs that the envelope alone decides (the runId is as given)."""
    return {
        "thread_id": envelope.thread_id,
        "thread_chat_id": envelope.thread_chat_id,
        "run_id": given(envelope.run_id),
        "dedupe_id": given(envelope.event_id) or _legacy_event_id(body),
        "seq": envelope.seq,
        "payload_version": envelope.payload_version,
        "fields_valid": v2_fields_valid(envelope),
        "trace_id": trace_id,
        "terminal": is_terminal(envelope.messages),
        "failure": is_failure(envelope.messages),
        "end_sha": given(envelope.end_sha),
    }


async def correlate(
    services: Services,
    body: bytes,
    envelope: DaemonEnvelope,
    token_run_id: str,
    trace_id: str,
    *,
    replay_of: str | None = None,
    ctx: Context | None = None,
) -> Reply:
    """Rules 3 to 8 and the apply. `replay_of` (a quarantine id) re-drives a stored envelope: the
    same path, but the outcome is reported to the replay instead of writing new quarantine rows.
    `ctx` is the context when the caller already read it (the one-statement path)."""
    if ctx is None:
        ctx = await _load_context(services, envelope, token_run_id)
    case = _Case(services, ctx, envelope, body, trace_id, replay_of, token_run_id)
    run_id = given(envelope.run_id)
    legacy = False
    if run_id is None:  # 3. runId: missing
        if ctx.strict:
            return await case.quarantine(QuarantineReason.MISSING_RUN_ID)
        # The token names its run: under a superseded run's token (or with no active run) this is
        # the old run's daemon, whose envelope is never applied to another run.
        if ctx.active_run_id is None or token_run_id != ctx.active_run_id:
            return await case.quarantine(QuarantineReason.MISMATCH)
        legacy = True
    elif run_id != ctx.active_run_id:  # 3. runId: mismatch (superseded, finished, foreign)
        return await case.quarantine(QuarantineReason.MISMATCH)
    limit = over_limit(envelope)
    if limit is not None:  # field limits: kept as a row, never bound in SQL
        log.info("envelope_over_limit", run_id=run_id, reason=limit, trace_id=trace_id)
        return await case.quarantine(QuarantineReason.INVALID_ENVELOPE)
    target = ctx.active_run_id
    assert target is not None
    # Rules 4 to 8 are decided under the run lock by the apply; below we only prepare its inputs.
    params = _apply_params(envelope, body, trace_id)
    terminal = params["terminal"]
    end_sha = params["end_sha"]
    diff = await diff_source_for(ctx.sandbox, end_sha) if terminal else None
    ui = await legacy_ui_outcome(ctx.sandbox, ctx.run_start_sha) if legacy and terminal else None
    legacy_row = None
    if legacy and replay_of is None:
        legacy_row = await case.row(QuarantineReason.LEGACY_MODE)
    del params["thread_id"], params["thread_chat_id"]
    params |= {
        "run_id": target,
        "diff_source": diff.source.value if diff else None,
        "diff_source_context": diff.context if diff else None,
        "ui_outcome": ui.outcome.value if ui else None,
        "ui_blocking_reason": ui.blocking_reason if ui else None,
    }
    try:
        async with connection(services.pool) as conn:
            result = await repository.apply_envelope(conn, params, envelope.messages, legacy_row)
    except repository.UnstorablePayload as exc:
        log.warning("envelope_unstorable", run_id=target, error=str(exc))
        return await case.quarantine(QuarantineReason.INVALID_ENVELOPE)
    return await _conclude(case, target, result, legacy=legacy, legacy_row=legacy_row)


async def _conclude(
    case: _Case,
    target: str,
    result: repository.ApplyResult,
    *,
    legacy: bool = False,
    legacy_row: dict[str, Any] | None = None,
) -> Reply:
    """The reply for the apply's outcome (rules 3 re-checked, 4 to 8, or applied)."""
    seen = {"run_id": target, "last_accepted_seq": result.last_seq}
    dims = case.ctx.dims
    if result.outcome == "applied":
        if legacy_row is not None and result.legacy_row_id is not None:
            await recording.after_legacy_apply(
                case.services, legacy_row, result.legacy_row_id, dims
            )
        ack = EnvelopeAck(
            EnvelopeStatus.APPLIED,
            legacy_mode=legacy,
            applied_messages=result.applied_messages,
            quarantine_id=result.legacy_row_id,
            **seen,
        )
        return Reply(200, ack, dims)
    if result.outcome == "duplicate":
        return Reply(202, EnvelopeAck(EnvelopeStatus.DUPLICATE, **seen), dims)
    if result.outcome == "stale_seq":
        recording.log_stale_once(target, case.envelope.seq, result.last_seq)
        return Reply(202, EnvelopeAck(EnvelopeStatus.STALE_SEQ, **seen), dims)
    # mismatch (pointer moved), payload version, v2 fields, endSha
    reason = QuarantineReason(result.outcome)
    if reason is QuarantineReason.MISSING_END_SHA and case.replay_of is None:
        await record_missing_end_sha(case.services.pool, run_id=target)
    return await case.quarantine(reason)


def _context(row: dict[str, Any]) -> Context:
    """The context from a row of `fetch_envelope_context` or `terragon_ingest_envelope`."""
    assert row["user_id"] is not None, "a live token always references its thread"
    provider = row["sandbox_provider"]
    dims = Dimensions(row["repo_full_name"], row["user_id"], provider, row["codesandbox_id"])
    sandbox = SandboxRef(SandboxProvider(provider), row["codesandbox_id"], row["repo_dir"])
    return Context(row["active_run_id"], bool(row["strict"]), row["run_start_sha"], sandbox, dims)


async def _load_context(services: Services, envelope: DaemonEnvelope, token_run_id: str) -> Context:
    async with connection(services.pool) as conn:
        row = await repository.fetch_envelope_context(
            conn, envelope.thread_id, envelope.thread_chat_id, token_run_id
        )
    assert row is not None, "a live token always references its thread"
    return _context(row)


def _legacy_event_id(body: bytes) -> str:
    """v1 envelopes carry no eventId: an exact resend of the same body is still a duplicate."""
    return "v1:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class _Case:
    """One envelope being decided: what a quarantine row needs."""

    services: Services
    ctx: Context
    envelope: DaemonEnvelope
    body: bytes
    trace_id: str
    replay_of: str | None
    token_run_id: str | None

    async def row(self, reason: QuarantineReason) -> dict[str, Any]:
        event_id, seq = given(self.envelope.event_id), self.envelope.seq
        return await quarantine.build_row(
            self.services,
            body=self.body,
            reason=reason,
            thread_id=self.envelope.thread_id,
            thread_chat_id=self.envelope.thread_chat_id,
            run_id=given(self.envelope.run_id),
            active_run_id=self.ctx.active_run_id,
            token_run_id=self.token_run_id,
            payload_version=self.envelope.payload_version,
            # An over-limit eventId / seq is kept in the payload, not in its column.
            event_id=event_id if event_id and len(event_id) <= ENVELOPE_FIELD_MAX_CHARS else None,
            seq=seq if seq is not None and -ENVELOPE_SEQ_MAX <= seq <= ENVELOPE_SEQ_MAX else None,
            trace_id=self.trace_id,
            dims=self.ctx.dims,
        )

    async def quarantine(self, reason: QuarantineReason) -> Reply:
        quarantine_id = self.replay_of
        if self.replay_of is None:
            quarantine_id = await recording.record_quarantine(
                self.services, await self.row(reason), dims=self.ctx.dims, strict=self.ctx.strict
            )
        ack = EnvelopeAck(EnvelopeStatus.QUARANTINED, reason=reason, quarantine_id=quarantine_id)
        return Reply(202, ack, self.ctx.dims)
