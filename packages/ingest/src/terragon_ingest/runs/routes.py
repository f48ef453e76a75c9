"""Internal run endpoints (CONTRACT §3, §4): threads (and closing one), run read-out, flags."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from terragon_core import DeliveryFailure, FeatureFlagName, FinishReason, MetricName
from terragon_ingest.db import connection
from terragon_ingest.errors import InvalidRequest, NotFound
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.openapi import error_responses
from terragon_ingest.runs import flags, repository, service
from terragon_ingest.runs.deps import RunsDeps
from terragon_ingest.runs.schemas import (
    FlagUpdate,
    FlagUpdated,
    Run,
    RunStartCreate,
    RunStarted,
    Thread,
    ThreadClosed,
    ThreadCreate,
)
from terragon_ingest.runs.start import start_agent_message


class RunsController(Controller):
    path = "/api/internal"
    tags = ["internal"]

    @post("/threads", status_code=HTTP_201_CREATED, responses=error_responses(400, 401, 503))
    async def upsert_thread(self, data: JSONBody[ThreadCreate], runs: Injected[RunsDeps]) -> Thread:
        """Register or update a thread (idempotent upsert)."""
        async with connection(runs.pool) as conn:
            return await repository.upsert_thread(
                conn,
                {
                    "thread_id": data.thread_id,
                    "user_id": data.user_id,
                    "repo_full_name": data.repo_full_name,
                    "sandbox_provider": data.sandbox_provider.value,
                    "codesandbox_id": data.codesandbox_id,
                    "repo_dir": data.repo_dir,
                },
            )

    @post(
        "/threads/{thread_id:str}/close",
        status_code=HTTP_200_OK,
        responses=error_responses(401, 404, 409, 503),
    )
    async def close_thread(
        self, thread_id: FromPath[str], runs: Injected[RunsDeps]
    ) -> ThreadClosed:
        """Close a thread: end its active run, if any, as `failed` (`finishReason:
        thread_closed`) and revoke every daemon token of the thread (401 `revoked` from then
        on). Closing twice is a 200 with `endedRunId: null` and `revokedTokens: 0`."""
        thread, closed = await service.close_thread(runs.pool, thread_id=thread_id)
        runs.tokens.forget_thread(thread_id)
        for _ in range(closed.ended_runs):
            runs.metrics.inc(
                MetricName.RUN_FINALIZED,
                repo=thread.repo_full_name,
                user=thread.user_id,
                provider=str(thread.sandbox_provider),  # a plain str as read
                reason=FinishReason.THREAD_CLOSED.value,
            )
        return ThreadClosed(thread_id, closed.ended_run_id, closed.revoked_tokens)

    @post(
        "/runs/start",
        status_code=HTTP_200_OK,
        responses=error_responses(
            400,
            401,
            404,
            409,
            422,
            502,
            503,
            s502="The sandbox's daemon did not take the start message (`reason`: "
            + ", ".join(f"`{r.value}`" for r in DeliveryFailure)
            + "). The run is minted (`runId`); the same `startRequestId` re-attempts delivery.",
        ),
    )
    async def start_run(
        self,
        data: JSONBody[RunStartCreate],
        runs: Injected[RunsDeps],
        request: Request[Any, Any, Any],
    ) -> RunStarted:
        """startAgentMessage: mint the run (idempotent on startRequestId), bind the sandbox,
        mint a daemon token and deliver the start message (`delivered: false` for `manual`).
        A daemon that does not take it is a 502 naming the minted run: retry the same request."""
        settings = runs.settings
        ingest_url = settings.server.PUBLIC_URL or str(request.base_url).rstrip("/")
        return await start_agent_message(
            runs,
            thread_id=data.thread_id,
            thread_chat_id=data.thread_chat_id,
            start_request_id=data.start_request_id,
            trigger_source=data.trigger_source,
            ingest_url=ingest_url,
        )

    @get("/runs/{run_id:str}", responses=error_responses(400, 401, 404, 503))
    async def get_run(self, run_id: FromPath[str], runs: Injected[RunsDeps]) -> Run:
        """One run: status, payload version, last accepted seq, SHAs, diff source, frozen flags."""
        async with connection(runs.pool) as conn:
            run = await repository.fetch_run(conn, run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run

    @put(
        "/flags/{name:str}",
        status_code=HTTP_200_OK,
        responses=error_responses(400, 401, 404, 503),
    )
    async def put_flag(
        self, name: FromPath[str], data: JSONBody[FlagUpdate], runs: Injected[RunsDeps]
    ) -> FlagUpdated:
        """Set a flag globally, or for one repo or one user. Started runs keep their snapshot."""
        try:
            flag = FeatureFlagName(name)
        except ValueError:
            known = ", ".join(f.value for f in FeatureFlagName)
            raise NotFound(f"unknown flag {name!r}; known flags: {known}") from None
        try:
            async with connection(runs.pool) as conn:
                scope, key = await flags.set_flag(
                    conn,
                    flag,
                    data.enabled,
                    repo_full_name=data.repo_full_name,
                    user_id=data.user_id,
                )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        return FlagUpdated(name=flag.value, scope=scope, scope_key=key, enabled=data.enabled)
