"""GitHub webhooks → permission tables → cache invalidations (CONTRACT §5 triggers).

`verify_signature` checks `X-Hub-Signature-256` in constant time. `handle_delivery` makes a
delivery idempotent by its body's sha256 (kept 30 days; retention purges older ones).
`apply_event` updates the permission tables for one delivery (inside the caller's transaction)
and returns the invalidations it implies; `run_invalidations` sends them through
`invalidate_repo_access`. GitHub names are compared folded (`lower(x COLLATE "C")` in SQL,
`terragon_core.fold_github_name` in cache keys): a case-only rename keeps the repository.

Handled: `member` (collaborators), `membership` (team members), `team` (created, deleted, edited,
added_to_repository, removed_from_repository), `team_add`, `repository` (publicized, privatized,
created, edited). Anything else is acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import structlog

from terragon_core import EventOrigin, InvalidationReason
from terragon_ingest.access import repository
from terragon_ingest.access.invalidation import invalidate_repo_access
from terragon_ingest.access.schemas import WebhookResult
from terragon_ingest.db import connection
from terragon_ingest.errors import InvalidRequest

if TYPE_CHECKING:
    from terragon_ingest.access.deps import AccessDeps
    from terragon_ingest.db import AsyncConn

log = structlog.get_logger()

Target = tuple[str | None, str, str]
"""`(userId or None for every cached user, repoFullName, InvalidationReason)`."""

HANDLED_EVENTS = frozenset({"member", "membership", "team", "team_add", "repository"})
REVOKING = frozenset(
    {
        ("member", "removed"),
        ("membership", "removed"),
        ("team", "removed_from_repository"),
        ("team", "deleted"),
    }
)
"""`(event, action)` pairs that only delete permission rows: applied again when duplicated."""
_REPO_EVENTS = {"publicized": "public", "privatized": "private"}


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>`, compared in constant time."""
    if not secret.strip() or not header or not header.startswith("sha256="):
        return False  # an empty key is one anybody can sign with
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode())


def _login(payload: dict[str, Any], field: str = "member") -> str:
    return str(payload[field]["login"])


def _team(payload: dict[str, Any]) -> dict[str, str]:
    team = payload["team"]
    org = payload.get("organization", {}).get("login", "")
    return {"team_id": str(team["id"]), "org": str(org), "slug": str(team.get("slug", ""))}


def _repo(payload: dict[str, Any]) -> str:
    return str(payload["repository"]["full_name"])


async def _for_login(conn: AsyncConn, login: str, repos: list[str], reason: str) -> list[Target]:
    users = await repository.fetch_users_for_login(conn, login)
    return [(user, repo, reason) for user in users for repo in repos]


async def apply_event(
    conn: AsyncConn, event: str, payload: dict[str, Any], *, again: bool = False
) -> list[Target]:
    """Update the permission tables for one delivery; return the invalidations it implies.

    `again`: a duplicate that only revokes, applied once more. Its delete runs; when it deleted
    nothing (the access is already gone) nothing else happens, so replaying a removal costs no
    invalidation and no event row.
    """
    action = payload.get("action")
    if event == "member":
        repo, login = _repo(payload), _login(payload)
        name = "delete_collaborator" if action == "removed" else "insert_collaborator"
        rows = await repository.execute(conn, name, {"repo_full_name": repo, "github_login": login})
        if again and not rows:
            return []
        return await _for_login(conn, login, [repo], InvalidationReason.COLLABORATOR_CHANGED)
    if event == "membership":
        team, login = _team(payload), _login(payload)
        if not again:
            await repository.execute(conn, "upsert_team", team)
        name = "delete_team_member" if action == "removed" else "insert_team_member"
        params = {"team_id": team["team_id"], "github_login": login}
        if not await repository.execute(conn, name, params) and again:
            return []
        repos = await repository.fetch_team_repos(conn, team["team_id"])
        return await _for_login(conn, login, repos, InvalidationReason.TEAM_MEMBERSHIP_CHANGED)
    if event in {"team", "team_add"}:
        return await _apply_team(conn, event, action, payload, again=again)
    if event == "repository" and "repository" in payload:
        repo = _repo(payload)
        visibility = _REPO_EVENTS.get(str(action)) or payload["repository"].get("visibility")
        if visibility is None:
            visibility = "private" if payload["repository"].get("private", True) else "public"
        params = {"repo_full_name": repo, "visibility": visibility}
        await repository.execute(conn, "upsert_repo_visibility", params)
        if action in _REPO_EVENTS or action == "edited":
            return [(None, repo, InvalidationReason.REPO_VISIBILITY_CHANGED)]
    return []


async def _apply_team(
    conn: AsyncConn, event: str, action: Any, payload: dict[str, Any], *, again: bool
) -> list[Target]:
    team = _team(payload)
    reason = InvalidationReason.TEAM_MEMBERSHIP_CHANGED
    if action == "deleted":
        repos = await repository.fetch_team_repos(conn, team["team_id"])
        if (
            not await repository.execute(conn, "delete_team", {"team_id": team["team_id"]})
            and again
        ):
            return []
        return [(None, repo, reason) for repo in repos]
    if not again:
        await repository.execute(conn, "upsert_team", team)
    if "repository" not in payload:
        return []
    repo = _repo(payload)
    params = {"team_id": team["team_id"], "repo_full_name": repo}
    if action == "removed_from_repository":
        if not await repository.execute(conn, "delete_team_repo", params) and again:
            return []
    elif event == "team_add" or action == "added_to_repository":
        await repository.execute(conn, "insert_team_repo", params)
    return [(None, repo, reason)]


async def run_invalidations(deps: AccessDeps, targets: list[Any], trace_id: str) -> int:
    """Invalidate every target of a delivery; returns the number of keys deleted."""
    deleted = 0
    for user_id, repo, reason in targets:
        deleted += await invalidate_repo_access(
            deps,
            user_id,
            repo,
            InvalidationReason(reason),
            origin=EventOrigin.PREVIEW_MAINTENANCE,
            trace_id=trace_id,
        )
    return deleted


async def grant_collaborator(
    deps: AccessDeps, repo_full_name: str, github_login: str, trace_id: str
) -> int:
    """The internal API's grant: what a webhook body seen before cannot do (CONTRACT §5).
    Returns the number of cached decisions dropped."""
    async with connection(deps.pool) as conn, conn.transaction():
        params = {"repo_full_name": repo_full_name, "github_login": github_login}
        await repository.execute(conn, "insert_collaborator", params)
        reason = InvalidationReason.COLLABORATOR_CHANGED
        targets = await _for_login(conn, github_login, [repo_full_name], reason)
    log.info("github_collaborator_granted", repo=repo_full_name, github_login=github_login)
    return await run_invalidations(deps, targets, trace_id)


def revokes_only(event: str, payload: dict[str, Any]) -> bool:
    """True for a delivery whose only effect is to take access away (rows deleted)."""
    action = payload.get("action")
    return isinstance(action, str) and (event, action) in REVOKING


async def _apply(
    conn: AsyncConn, event: str, payload: dict[str, Any], *, again: bool = False
) -> list[Target]:
    try:
        return await apply_event(conn, event, payload, again=again)
    except (KeyError, TypeError, AttributeError) as exc:  # a field missing or of another type
        raise InvalidRequest(f"{event!r} payload lacks {exc}") from exc


async def handle_delivery(
    deps: AccessDeps,
    event: str,
    delivery: str,
    payload: dict[str, Any],
    trace_id: str,
    *,
    body_sha256: bytes,
) -> WebhookResult:
    """Dedupe on the body's sha256, apply in one transaction, then invalidate.

    GitHub signs the body, not `X-GitHub-Delivery`, so a captured body replayed under a new
    delivery id is the same delivery: `duplicate`, and it grants nothing (CONTRACT §5). The digest
    row is inserted in the transaction that applies the change, so the two commit together and a
    concurrent copy waits on the key, then finds it. This fails closed: a genuine byte-identical
    re-grant within 30 days is ignored too (the platform re-grants through the internal API,
    `PUT /api/internal/access/collaborators`).

    Failing closed also means a duplicate that only revokes (`REVOKING`) is applied again, still
    answered `duplicate`: a collaborator removed, re-added and removed again may send the first
    removal's bytes a second time (the payload has no timestamp of the change), and ignoring it
    would leave them allowed. A replayed removal can only take access away, as the grant it
    undoes could be re-sent through the internal API.

    A redelivery whose invalidations did not all succeed retries them; the tables are not
    touched twice.
    """
    targets: list[Any] = []
    action = payload.get("action")
    revoking = revokes_only(event, payload)
    async with connection(deps.pool) as conn:
        async with conn.transaction():
            fresh = await repository.insert_delivery(
                conn, body_sha256, delivery, event, None if action is None else str(action)
            )
            if fresh:
                targets = await _apply(conn, event, payload)
                await repository.set_delivery_targets(conn, body_sha256, targets)
            elif revoking:
                targets = await _apply(conn, event, payload, again=True)
        if not fresh and not revoking:
            recorded = await repository.fetch_delivery(conn, body_sha256)
            if recorded is None or recorded[1]:
                log.info(
                    "github_webhook_duplicate",
                    github_event=event,
                    delivery=delivery,
                    recorded=recorded is not None,
                )
                return WebhookResult(status="duplicate", event=event)
            targets = recorded[0]
    deleted = await run_invalidations(deps, targets, trace_id)
    async with connection(deps.pool) as conn:
        await repository.mark_delivery_invalidated(conn, body_sha256)
    status = ("applied" if event in HANDLED_EVENTS else "ignored") if fresh else "duplicate"
    log.info(
        "github_webhook_handled",
        github_event=event,
        delivery=delivery,
        status=status,
        keys=deleted,
        revocation_reapplied=not fresh and revoking,
    )
    return WebhookResult(status=status, event=event, keys_deleted=deleted)
