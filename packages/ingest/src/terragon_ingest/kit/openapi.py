"""What `/schema` says about every operation: the one error body, the statuses each route answers,
and `additionalProperties: false` for the request Structs that reject unknown fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec

from terragon_core import ENVELOPE_ID_MAX_CHARS

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.openapi.spec import Schema
    from litestar.typing import FieldDefinition


# Request constraints, enforced by msgspec on decode and published in /schema by the same `Meta`.
# PostgreSQL cannot store a NUL in text, so no request string may carry one (a 400 naming the
# field, decided before any query); the Python and the ECMA-262 regex dialects read this pattern alike.
NO_NUL_PATTERN = r"^[^\u0000]*$"
Text = Annotated[str, msgspec.Meta(pattern=NO_NUL_PATTERN)]
"""A request string the database can store."""
WireId = Annotated[str, msgspec.Meta(max_length=ENVELOPE_ID_MAX_CHARS, pattern=NO_NUL_PATTERN)]
"""`threadId`, `threadChatId`, `runId`: at most 256 characters (CONTRACT §4), no NUL."""


class ErrorBody(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every error answer of the API's own routes (`POST /api/daemon-event` answers `EnvelopeAck`)."""

    code: str
    """What went wrong, by name: an error class (`NotFound`, `ValidationException`, …) or a
    `SecurityReason` value for a denial."""
    error: str
    """A sentence for a person; never database or internal text."""
    detail: list[Any] | dict[str, Any] | None = None
    """Which fields failed validation (400 from request validation only)."""
    trace_id: str | None = None
    """On a 502, 503 (and 500): the trace id the cause is logged under."""
    reason: str | None = None
    """On a 502: why the upstream failed (for `runs/start`, a `DeliveryFailure` value)."""
    run_id: str | None = None
    """On a 502 from `runs/start`: the run it minted (the same `startRequestId` finds it)."""
    retry_after_ms: int | None = None
    """On a preview denial because the access cache is down (503)."""
    backoff_hint: str | None = None
    """With `retryAfterMs`: how to back off after further 503s."""


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is invalid (validation `detail`, or a value the service cannot use).",
    401: "Missing or wrong credentials.",
    403: "Denied (`code` is the `SecurityReason`).",
    404: "No such resource.",
    409: "The request contradicts what is stored, or the run-context pointer kept moving.",
    413: "The body is over the route's size cap.",
    422: "The sandbox provider is not supported by this deployment.",
    429: "Rate limited.",
    502: "An upstream this service called failed; `reason` says why, `traceId` names the logged "
    "cause.",
    503: "A dependency is down; retry after `Retry-After` (`traceId` names the logged cause).",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """`responses=` for a route: each status documented with `ErrorBody`.

    `descriptions` overrides the default text per status (`s404="…"`)."""
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status]),
            generate_examples=False,
        )
        for status in statuses
    }


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's Struct schema, plus `additionalProperties: false` when the Struct has
    `forbid_unknown_fields=True`: the service rejects unknown fields, so the schema says so."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            # create_component_schema returns the component itself; the reference is made later.
            schema.additional_properties = False
        return schema
