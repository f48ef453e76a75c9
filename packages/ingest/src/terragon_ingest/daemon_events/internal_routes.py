"""Internal read-outs and triggers of the correlation plane (CONTRACT §3), behind the bearer token:
quarantine rows, the legacy UI-validation outcome, and the maintenance sweep.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from terragon_core import ENVELOPE_ID_MAX_CHARS as ID_MAX
from terragon_core import QuarantineReason
from terragon_ingest.daemon_events import repository
from terragon_ingest.daemon_events.deps import DaemonEventsDeps
from terragon_ingest.daemon_events.maintenance import sweep
from terragon_ingest.daemon_events.schemas import QuarantineRow, SweepResult, UiValidation
from terragon_ingest.db import connection
from terragon_ingest.errors import InvalidRequest, NotFound
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.openapi import NO_NUL_PATTERN as NO_NUL
from terragon_ingest.kit.openapi import error_responses

MAX_LIMIT = 1000


class CorrelationController(Controller):
    path = "/api/internal"
    tags = ["internal"]

    @get("/quarantine", responses=error_responses(400, 401, 503))
    async def list_quarantine(
        self,
        daemon_events: Injected[DaemonEventsDeps],
        thread_id: Annotated[
            str | None, QueryParameter(name="threadId", max_length=ID_MAX, pattern=NO_NUL)
        ] = None,
        run_id: Annotated[
            str | None, QueryParameter(name="runId", max_length=ID_MAX, pattern=NO_NUL)
        ] = None,
        reason: Annotated[QuarantineReason | None, QueryParameter()] = None,
        # Text parsed here: Litestar's lax conversion would also take a number (`since=0.5`) as a
        # Unix time, which the schema's `date-time` does not promise.
        since: Annotated[str | None, QueryParameter(format="date-time")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    ) -> list[QuarantineRow]:
        """Quarantined envelopes, newest first, filtered by thread, run, reason and time."""
        try:
            since_at = msgspec.convert(since, datetime | None)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"since must be an RFC 3339 date-time: {exc}") from None
        async with connection(daemon_events.pool) as conn:
            return await repository.list_quarantine(
                conn,
                thread_id=thread_id,
                run_id=run_id,
                reason=reason.value if reason else None,
                since=since_at,
                limit=limit,
            )

    @get(
        "/ui-validation/{thread_id:str}/{thread_chat_id:str}",
        responses=error_responses(400, 401, 404, 503),
    )
    async def get_ui_validation(
        self,
        thread_id: FromPath[str],
        thread_chat_id: FromPath[str],
        daemon_events: Injected[DaemonEventsDeps],
    ) -> UiValidation:
        """The latest UI-validation outcome of a (thread, chat): `latestRunId`, outcome, reason."""
        async with connection(daemon_events.pool) as conn:
            row = await repository.fetch_ui_validation(conn, thread_id, thread_chat_id)
        if row is None:
            raise NotFound(
                f"no UI-validation outcome for thread {thread_id!r} chat {thread_chat_id!r} yet"
            )
        return row

    @post("/maintenance/sweep", status_code=HTTP_200_OK, responses=error_responses(401, 503))
    async def run_sweep(self, daemon_events: Injected[DaemonEventsDeps]) -> SweepResult:
        """Run the maintenance backstop now (it also runs every 60 s); one sweeper at a time."""
        return await sweep(daemon_events)
