"""Access endpoints: the GitHub webhook (public, signature-verified) and internal triggers."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, post, put
from litestar.exceptions import ClientException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from terragon_core import (
    GITHUB_DELIVERY_ID_MAX_CHARS,
    EdgeRejection,
    EventOrigin,
    MetricName,
    SecurityReason,
    http_status_for,
)
from terragon_ingest.access import repository, service
from terragon_ingest.access.deps import AccessDeps
from terragon_ingest.access.invalidation import invalidate_repo_access
from terragon_ingest.access.schemas import (
    CollaboratorGrant,
    CollaboratorGranted,
    GithubAccount,
    GithubAccountUpdate,
    InvalidationCreate,
    InvalidationResult,
)
from terragon_ingest.db import connection
from terragon_ingest.errors import InvalidRequest
from terragon_ingest.kit.deps import Injected
from terragon_ingest.kit.http import json_response, read_capped_body
from terragon_ingest.kit.openapi import error_responses
from terragon_ingest.telemetry import Metrics, trace_id_from

log = structlog.get_logger()


class GithubWebhookController(Controller):
    path = "/api/webhooks"
    tags = ["webhooks"]

    @post(
        "/github",
        status_code=HTTP_200_OK,
        responses=error_responses(
            400,
            401,
            413,
            503,
            s401="`signature_mismatch`: missing or wrong X-Hub-Signature-256.",
            s413="`too_large`: the body is over TERRAGON_WEBHOOK_MAX_BODY_BYTES.",
        ),
        request_max_body_size=None,  # our own cap (a smaller one) answers 413 with a `code`
    )
    async def github(
        self, request: Request[Any, Any, Any], access: Injected[AccessDeps]
    ) -> Response[bytes]:
        """Apply a GitHub permission change (`X-Hub-Signature-256` verified) and invalidate."""
        # The body under its cap before the signature is looked at (CONTRACT §3 "Edge limits").
        try:
            body = await read_capped_body(request, access.settings.server.WEBHOOK_MAX_BODY_BYTES)
        except ClientException as exc:  # a malformed Content-Length header
            raise InvalidRequest(str(exc.detail)) from exc
        if body is None:
            return _too_large(access.metrics)
        secret = access.settings.server.GITHUB_WEBHOOK_SECRET
        if not service.verify_signature(secret, body, request.headers.get("x-hub-signature-256")):
            log.warning(
                "github_webhook_signature_rejected",
                delivery=request.headers.get("x-github-delivery"),
                action="check GITHUB_WEBHOOK_SECRET matches the secret configured on GitHub",
            )
            reason = SecurityReason.SIGNATURE_MISMATCH
            body_out = {"code": reason.value, "error": "missing or wrong X-Hub-Signature-256"}
            return json_response(body_out, http_status_for(reason))
        event = request.headers.get("x-github-event", "")
        delivery = request.headers.get("x-github-delivery") or ""
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"webhook body is not JSON: {exc}") from exc
        if not isinstance(payload, dict) or not 0 < len(delivery) <= GITHUB_DELIVERY_ID_MAX_CHARS:
            raise InvalidRequest(
                "webhook needs a JSON object body and an X-GitHub-Delivery of at most "
                f"{GITHUB_DELIVERY_ID_MAX_CHARS} characters"
            )
        trace_id = trace_id_from(request.headers.get("traceparent"))
        digest = hashlib.sha256(body).digest()
        result = await service.handle_delivery(
            access, event, delivery, payload, trace_id, body_sha256=digest
        )
        return json_response(msgspec.to_builtins(result))


def _too_large(metrics: Metrics) -> Response[bytes]:
    reason = EdgeRejection.TOO_LARGE
    metrics.inc(MetricName.EDGE_REJECTED, repo=None, user=None, provider=None, reason=reason.value)
    return json_response({"code": reason.value, "error": "webhook body over the size cap"}, 413)


class AccessInternalController(Controller):
    path = "/api/internal/access"
    tags = ["internal"]

    @post("/invalidate", status_code=HTTP_200_OK, responses=error_responses(400, 401, 503))
    async def invalidate(
        self, data: JSONBody[InvalidationCreate], access: Injected[AccessDeps]
    ) -> InvalidationResult:
        """Internal triggers (ready action, thread visibility change, ...): drop cached access."""
        deleted = await invalidate_repo_access(
            access,
            data.user_id,
            data.repo_full_name,
            data.reason,
            origin=EventOrigin.PREVIEW_MAINTENANCE,
        )
        return InvalidationResult(keys_deleted=deleted)

    @put("/collaborators", status_code=HTTP_200_OK, responses=error_responses(400, 401, 503))
    async def grant_collaborator(
        self, data: JSONBody[CollaboratorGrant], access: Injected[AccessDeps]
    ) -> CollaboratorGranted:
        """Grant (or re-grant) a repo's collaborator and drop their cached denials. Webhooks are
        idempotent by body for 30 days, so a genuine byte-identical re-grant from GitHub is
        ignored: the platform restores access here."""
        deleted = await service.grant_collaborator(
            access, data.repo_full_name, data.github_login, trace_id_from(None)
        )
        return CollaboratorGranted(
            repo_full_name=data.repo_full_name,
            github_login=data.github_login,
            keys_deleted=deleted,
        )

    @put(
        "/github-accounts/{user_id:str}",
        status_code=HTTP_200_OK,
        responses=error_responses(400, 401, 409, 503),
    )
    async def link_github_account(
        self,
        user_id: FromPath[str],
        data: JSONBody[GithubAccountUpdate],
        access: Injected[AccessDeps],
    ) -> GithubAccount:
        """Link a terragon user to their GitHub login (collaborator/team rows use logins)."""
        async with connection(access.pool) as conn:
            await repository.link_github_account(conn, user_id, data.github_login)
        return GithubAccount(user_id=user_id, github_login=data.github_login)
