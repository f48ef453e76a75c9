"""The daemon → ingest envelope (CONTRACT §4) and every rule about it that needs no state.

Decode with `decode_envelope`, which is strict (no `0` for a bool, no `"1"` for an int) and
rejects wrong types with a readable error. Stateful rules (runId binding, payload-version
negotiation, dedupe, seq) belong to the ingest service; the order of all rules is CONTRACT §4's.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from terragon_core.constants import (
    DAEMON_EVENT_PAYLOAD_VERSION,
    ENVELOPE_FIELD_MAX_CHARS,
    ENVELOPE_ID_MAX_CHARS,
    ENVELOPE_SEQ_MAX,
    LEGACY_THREAD_CHAT_ID,
    TERMINAL_MESSAGE_TYPES,
)

PayloadVersion = Literal[1, 2]

Id = Annotated[str, msgspec.Meta(max_length=ENVELOPE_ID_MAX_CHARS, pattern="^[^\x00]*$")]
"""An identifier the envelope is attributed by: over the limit, or holding a NUL (PostgreSQL text
cannot, so it could never be attributed or recorded), the body is a 400 (CONTRACT §4)."""

ENVELOPE_CONTRACT_VERSION: Final = DAEMON_EVENT_PAYLOAD_VERSION


class DaemonEnvelope(msgspec.Struct, rename="camel", omit_defaults=True):
    """`POST /api/daemon-event` body. v1 carries only the first five fields."""

    thread_id: Id
    messages: list[dict[str, Any]]
    thread_chat_id: Id = LEGACY_THREAD_CHAT_ID
    timezone: str = "UTC"
    payload_version: PayloadVersion = 1
    run_id: Id | None = None
    # eventId, seq, endSha and message uuids are not bounded here: over their limits the envelope
    # is quarantined as `invalid_envelope` (a state we record, see `over_limit`), not a 400 (which
    # loses it). seq is a plain int for the same reason (0, negative and > 2^63-1 included).
    event_id: str | None = None
    seq: int | None = None
    end_sha: str | None = None


class EnvelopeError(ValueError):
    """The body is not JSON or has wrong types; the daemon gets a 400 with `errors`."""


_decoder: Final = msgspec.json.Decoder(DaemonEnvelope, strict=True)


def decode_envelope(body: bytes) -> DaemonEnvelope:
    """Strictly decode a raw request body; raise `EnvelopeError` with the decoder's message."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise EnvelopeError(str(exc)) from exc
    except UnicodeDecodeError as exc:  # msgspec surfaces invalid UTF-8 in strings this way
        raise EnvelopeError(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    except RecursionError:  # hostile nesting deeper than the interpreter's recursion limit
        raise EnvelopeError("body nests too deeply") from None


def given(value: str | None) -> str | None:
    """Absent, `null` and `""` all count as "not given" (real daemons send `"runId": ""`)."""
    return value or None


def is_terminal(messages: list[dict[str, Any]]) -> bool:
    """A batch is terminal when any message is `result`, `custom-stop` or `custom-error`."""
    return any(_kind(m) in TERMINAL_MESSAGE_TYPES for m in messages)


def _kind(message: dict[str, Any]) -> str | None:
    """A message's `type` when it is a string: the agent's JSON may put anything there (a list or
    an object is not hashable, and is no terminal type)."""
    kind = message.get("type")
    return kind if isinstance(kind, str) else None


def is_failure(messages: list[dict[str, Any]]) -> bool:
    """A failure: a `custom-error` message, or a `result` with `is_error: true`."""
    for m in messages:
        kind = m.get("type")
        if kind == "custom-error" or (kind == "result" and m.get("is_error") is True):
            return True
    return False


def v2_fields_valid(envelope: DaemonEnvelope) -> bool:
    """A v2 envelope must carry `runId`, `eventId` and a positive integer `seq`.

    `runId` absence is its own rule (checked earlier); this covers `eventId` and `seq`.
    """
    return given(envelope.event_id) is not None and envelope.seq is not None and envelope.seq >= 1


def over_limit(envelope: DaemonEnvelope) -> str | None:
    """Which field is over its CONTRACT §4 limit (`eventId`, `endSha`, a message `uuid` that does
    not `fits_field`; `seq` beyond a 64-bit integer), or None. Such an envelope is quarantined
    `invalid_envelope` before any SQL sees it: PostgreSQL could not index or bind those values, and
    a daemon would retry a 5xx forever."""
    for name, value in (("eventId", envelope.event_id), ("endSha", envelope.end_sha)):
        if (why := _unfit(name, value)) is not None:
            return why
    # Over the top only: a v2 seq below 1 is rule 5 (v2 fields), decided after payload version.
    if envelope.seq is not None and not -ENVELOPE_SEQ_MAX - 1 <= envelope.seq <= ENVELOPE_SEQ_MAX:
        return "seq over 2^63-1"
    for message in envelope.messages:
        if (why := _unfit("a message uuid", message.get("uuid"))) is not None:
            return why
    return None


class EnvelopeScan(NamedTuple):
    """What `over_limit`, `is_terminal` and `is_failure` say of an envelope, in one pass over its
    messages (the ingest hot path asks all three of every envelope)."""

    fits: bool
    """`over_limit(envelope) is None`."""
    terminal: bool
    failure: bool


def scan_envelope(envelope: DaemonEnvelope) -> EnvelopeScan:
    """`over_limit` (only whether it is None), `is_terminal` and `is_failure`, in one pass."""
    fits = _unfit("", envelope.event_id) is None and _unfit("", envelope.end_sha) is None
    seq = envelope.seq
    if seq is not None and not -ENVELOPE_SEQ_MAX - 1 <= seq <= ENVELOPE_SEQ_MAX:
        fits = False
    terminal = failure = False
    for message in envelope.messages:
        get = message.get
        kind = get("type")
        if isinstance(kind, str) and kind in TERMINAL_MESSAGE_TYPES:
            terminal = True
            if kind == "custom-error" or (kind == "result" and get("is_error") is True):
                failure = True
        uuid = get("uuid")
        if (
            fits
            and isinstance(uuid, str)
            and (len(uuid) > ENVELOPE_FIELD_MAX_CHARS or "\x00" in uuid)
        ):
            fits = False
    return EnvelopeScan(fits, terminal, failure)


def fits_field(value: str) -> bool:
    """Whether PostgreSQL can bind and index `value` as an `eventId`, `endSha` or message `uuid`:
    at most 128 characters and no NUL (text cannot hold one)."""
    return _unfit("", value) is None


def _unfit(name: str, value: object) -> str | None:
    if not isinstance(value, str):
        return None
    if len(value) > ENVELOPE_FIELD_MAX_CHARS:
        return f"{name} longer than {ENVELOPE_FIELD_MAX_CHARS} characters"
    if "\x00" in value:
        return f"{name} contains a NUL character"
    return None


def envelope_json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope; its hash is embedded in the daemon bundle manifest."""
    return msgspec.json.schema(DaemonEnvelope)
