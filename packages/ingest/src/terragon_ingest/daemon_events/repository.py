"""SQL of the daemon-event domain. An ordinary envelope costs one statement, one transaction, one
round trip: `terragon_ingest_envelope` (db/functions/terragon_ingest_envelope.sql) checks the
token, reads the context, decides every rule and applies. The hot statements are prepared on first
use (`prepare=True`) with stable parameter types.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, LiteralString, cast

import msgspec
import psycopg
import psycopg.errors
import structlog
from psycopg.rows import class_row, dict_row

from terragon_core import CorrelationOutcome, QuarantineRecord, SecurityReason, sql_columns
from terragon_core.quarantine import BigInt, Integer, SmallInt, Uuid
from terragon_ingest.daemon_events.schemas import QuarantineRow, UiValidation
from terragon_ingest.db import load_queries
from terragon_ingest.errors import DatabaseUnavailable
from terragon_ingest.telemetry.repository import event_row

if TYPE_CHECKING:
    from datetime import datetime

    from terragon_core import PreviewEvent
    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.daemon_events")
log = structlog.get_logger()


class UnstorablePayload(Exception):
    """PostgreSQL refused the envelope's values for good (a `\\u0000` escape in jsonb, a value too
    large to index): retrying cannot help."""


Bytea = Annotated[bytes, msgspec.Meta(extra={"sql": "bytea"})]
Messages = Annotated[list[dict[str, Any]], msgspec.Meta(extra={"sql": "jsonb"})]
LegacyRow = Annotated[QuarantineRecord, msgspec.Meta(extra={"sql": "jsonb"})]


class DecisionInput(msgspec.Struct, frozen=True, kw_only=True):
    """`terragon_ingest_envelope`'s arguments, one field per parameter (`p_<field>`, its type the
    parameter's), in its order: the statement's argument list is derived from these fields, and
    a test holds them equal to the function's signature and to `terragon_ingest_envelopes`'
    batch keys. What the envelope alone says (`service.decision_input`); the `needs_inputs`
    answer fills in the last six (`inputs_ready` and what it asked for)."""

    token_hash: Bytea | None
    """NULL for an operator replay: `token_run_id` names the run."""
    token_run_id: str | None
    thread_id: str
    thread_chat_id: str
    run_id: str | None
    dedupe_id: str | None
    seq: BigInt | None
    payload_version: SmallInt | None
    fields_valid: bool
    within_limits: bool
    messages: Messages | None
    """None when over the limits, or when PostgreSQL cannot store them (`UnstorablePayload`)."""
    trace_id: str
    terminal: bool
    failure: bool
    end_sha: str | None
    inputs_ready: bool = False
    diff_source: str | None = None
    diff_source_context: str | None = None
    legacy_row: LegacyRow | None = None
    ui_outcome: str | None = None
    ui_blocking_reason: str | None = None


class Decision(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A row of `terragon_ingest_envelope`, one field per column (its OUT parameters, by name):
    the outcome, what the apply did, and the context (every column but `outcome` is NULL for
    `unauthorized` / `forbidden`). `array_like`: a row converts to it as it comes, its values in
    the fields' order (the SELECT lists them so), without a dict per row."""

    outcome: CorrelationOutcome
    legacy: bool | None
    applied_messages: Integer | None
    last_seq: BigInt | None
    run_status: str | None
    legacy_row_id: Uuid | None
    token_run_id: str | None
    user_id: str | None
    repo_full_name: str | None
    repo_dir: str | None
    sandbox_provider: str | None
    codesandbox_id: str | None
    active_run_id: str | None
    run_id_strict: bool | None
    """The run's frozen daemonRunIdStrict."""
    run_start_sha: str | None
    token_refusal: SecurityReason | None
    """Why a known token no longer authenticates (`expired` / `revoked`), with `unauthorized`."""


_INPUTS: Final = sql_columns(DecisionInput)


def _statement(name: str) -> LiteralString:
    """A query of queries.sql with its decision columns and arguments filled in from the two
    structs (the names are these fields', not input: the text stays as literal as the file's)."""
    columns = ", ".join(
        f"{column}::text AS {column}" if kind == "uuid" else column
        for column, kind, _ in sql_columns(Decision)
    )
    arguments = ",\n    ".join(f"p_{field} => %({field})s::{kind}" for field, kind, _ in _INPUTS)
    text = Q[name].replace("{decision}", columns).replace("{arguments}", arguments)
    return cast("LiteralString", text)


for _name in ("ingest_envelope", "ingest_envelopes"):
    Q[_name] = _statement(_name)  # as it runs (tools/bench and tests read it here too)


def _decision(values: Sequence[Any]) -> Decision:
    """A row's decision columns (in the fields' order, as `_statement` lists them in the SELECT),
    each checked against its field's type, all of them or an error."""
    return msgspec.convert(values, Decision)


async def ingest_envelope(conn: AsyncConn, inputs: DecisionInput) -> Decision:
    """The one correlation decision and the apply, one prepared statement; every failure leaves
    nothing written.

    A failure the same envelope would meet again (a value PostgreSQL cannot store, bind or index)
    is `UnstorablePayload`: the caller asks again without the messages and the decision answers
    `invalid_envelope` (a 503 would have the daemon retry it forever). Only a failure that can pass
    (the server or connection gone, a serialization conflict) is `DatabaseUnavailable`."""
    values = msgspec.structs.asdict(inputs)
    if inputs.messages is not None:
        values["messages"] = msgspec.json.encode(inputs.messages).decode()
    if inputs.legacy_row is not None:
        values["legacy_row"] = msgspec.json.encode(inputs.legacy_row).decode()
    try:
        cur = conn.cursor(row_factory=lambda _cur: _decision)
        await cur.execute(Q["ingest_envelope"], values, prepare=True)
        row = await cur.fetchone()
    except _DETERMINISTIC as exc:
        log.warning("envelope_unstorable", thread_id=inputs.thread_id, error=str(exc))
        raise UnstorablePayload(type(exc).__name__) from exc
    except psycopg.OperationalError:
        raise  # the pool's translate_errors turns this into DatabaseUnavailable
    except psycopg.Error as exc:
        log.error("envelope_apply_aborted", thread_id=inputs.thread_id, error=str(exc))
        raise DatabaseUnavailable(
            f"the apply transaction aborted ({type(exc).__name__}: {exc}); nothing was written, "
            "the daemon retries the same envelope"
        ) from exc
    assert row is not None
    return row


async def ingest_envelopes(conn: AsyncConn, batch: list[DecisionInput]) -> list[Decision | None]:
    """Group commit: each envelope through the one decision, one statement, one commit.
    The answers are in the batch's order. First without subtransactions (the common case: nothing
    fails, and PostgreSQL is spared a savepoint per envelope); if that statement fails on a live
    connection, nothing of it was written and the batch runs again with each envelope in its own
    subtransaction: None for an envelope whose subtransaction failed (nothing of it was written:
    decide it again alone). A lost connection raises, as does any failure of the second run."""
    payload = batch_json(batch)
    try:
        rows = await _run_batch(conn, payload, isolated=False)
    except psycopg.Error as exc:
        if conn.broken:  # gone mid-statement: whether it committed is unknown; the caller decides
            raise
        if isinstance(exc, psycopg.errors.QueryCanceled):  # the statement timeout: a second
            raise  # run would take as long; each envelope is decided again alone
        log.warning(
            "group_commit_batch_isolated",
            size=len(batch),
            sqlstate=exc.sqlstate,
            hint="an envelope of the batch failed; the batch runs again, one subtransaction each",
        )
        rows = await _run_batch(conn, payload, isolated=True)
    answers: list[Decision | None] = [None] * len(batch)
    for ordinal, failed, *values in rows:
        if failed is None:
            answers[ordinal] = _decision(values)
        else:
            log.warning("envelope_in_batch_failed", sqlstate=failed, hint="decided again alone")
    return answers


async def _run_batch(conn: AsyncConn, payload: str, *, isolated: bool) -> list[Any]:
    cur = conn.cursor()
    await cur.execute(Q["ingest_envelopes"], {"batch": payload, "isolated": isolated}, prepare=True)
    return await cur.fetchall()


def batch_json(batch: list[DecisionInput]) -> str:
    """`terragon_ingest_envelopes`' argument: each input by its field names (the parameter names
    without `p_`), token_hash as hex (tools/bench replays this text as the grouped ceiling)."""
    items = []
    for inputs in batch:
        assert inputs.token_hash is not None, "a replay is never grouped"
        # The struct itself, its digest swapped for its hex (encoding does not check the field's
        # type): the same object, key for key, as its `asdict`, without building that dict.
        hexed: Any = inputs.token_hash.hex()
        items.append(msgspec.structs.replace(inputs, token_hash=hexed))
    return _encode_batch(items).decode()


_encode_batch = msgspec.json.Encoder().encode


_DETERMINISTIC: tuple[type[psycopg.Error], ...] = (
    psycopg.DataError,  # 22xxx: a NUL in jsonb, a value out of range
    psycopg.errors.ProgramLimitExceeded,  # 54xxx: an index row too large
    psycopg.errors.UndefinedFunction,  # 42883: a parameter of a type no function takes (numeric)
    psycopg.errors.DatatypeMismatch,  # 42804
)


def new_quarantine_id() -> str:
    """A quarantine row id, made before the insert because its event carries it."""
    return str(uuid.uuid4())


def quarantine_item(
    row: QuarantineRecord, quarantine_id: str, event: PreviewEvent, denial: PreviewEvent | None
) -> dict[str, Any]:
    """One quarantine decision to record (an item of `terragon_record_quarantines`' batch): the row, its
    `quarantine.recorded` event and, for a strict mismatch, the `access.denied` to emit for each
    live preview session of the row's (thread, chat), its session id left empty."""
    return {
        "row": msgspec.structs.replace(row, id=quarantine_id),
        "event": event_row(event),
        "denial": event_row(denial) if denial is not None else None,
    }


async def insert_quarantine(
    conn: AsyncConn, item: dict[str, Any], *, once: bool = False
) -> list[str]:
    """One `quarantine_item` alone (a batch of one): all or nothing. Returns the sessions denied.
    `once`: after its grouped statement failed, skip it if that statement did commit it."""
    batch = _encode([item])
    if once:
        cur = await conn.execute(
            Q["insert_quarantine_once"], {"batch": batch, "id": item["row"].id}, prepare=True
        )
    else:
        cur = await conn.execute(Q["insert_quarantines"], {"batch": batch}, prepare=True)
    rows = await cur.fetchall()
    return list(rows[0][1]) if rows else []


async def insert_quarantines(
    conn: AsyncConn, items: Sequence[dict[str, Any]]
) -> list[list[str] | None]:
    """Group commit: the `quarantine_item`s by one set-based statement, one commit, all or
    nothing. The answers (the sessions each denied) are in the items' order. A failure raises,
    and nothing of the batch was written: record each item again alone."""
    cur = await conn.execute(Q["insert_quarantines"], {"batch": _encode(items)}, prepare=True)
    answers: list[list[str] | None] = [None] * len(items)
    for ordinal, denied in await cur.fetchall():
        answers[ordinal] = list(denied)
    return answers


def _encode(items: Sequence[dict[str, Any]]) -> str:
    return msgspec.json.encode(list(items)).decode()


async def list_quarantine(
    conn: AsyncConn,
    *,
    thread_id: str | None,
    run_id: str | None,
    reason: str | None,
    since: datetime | None,
    limit: int,
) -> list[QuarantineRow]:
    params = {
        "thread_id": thread_id,
        "run_id": run_id,
        "reason": reason,
        "since": since,
        "limit": limit,
    }
    cur = conn.cursor(row_factory=class_row(QuarantineRow))
    await cur.execute(Q["list_quarantine"], params)
    return await cur.fetchall()


async def fetch_quarantine(conn: AsyncConn, quarantine_id: str) -> QuarantineRecord | None:
    """One row by id, every column; None for an unknown or malformed id."""
    cur = conn.cursor(row_factory=dict_row)
    try:
        await cur.execute(Q["fetch_quarantine"], {"id": quarantine_id})
    except psycopg.DataError:
        return None
    row = await cur.fetchone()
    return None if row is None else msgspec.convert(row | {"id": str(row["id"])}, QuarantineRecord)


async def mark_replayed(conn: AsyncConn, quarantine_id: str, replay_status: str) -> None:
    await conn.execute(Q["mark_replayed"], {"id": quarantine_id, "replay_status": replay_status})


async def fetch_ui_validation(
    conn: AsyncConn, thread_id: str, thread_chat_id: str
) -> UiValidation | None:
    cur = conn.cursor(row_factory=class_row(UiValidation))
    await cur.execute(
        Q["fetch_ui_validation"], {"thread_id": thread_id, "thread_chat_id": thread_chat_id}
    )
    return await cur.fetchone()


async def try_sweep_lock(conn: AsyncConn, key: int) -> bool:
    """Inside a transaction: True when this session now holds the sweep lock until commit."""
    cur = await conn.execute(Q["try_sweep_lock"], {"key": key})
    row = await cur.fetchone()
    return bool(row and row[0])


async def existing_object_keys(conn: AsyncConn, keys: list[str]) -> set[str]:
    cur = await conn.execute(Q["existing_object_keys"], {"keys": keys})
    return {str(r[0]) for r in await cur.fetchall()}
