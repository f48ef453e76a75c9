"""Wire shapes of the access endpoints. camelCase on the wire."""

from __future__ import annotations

from typing import Annotated

import msgspec

from terragon_core import GITHUB_NAME_MAX_CHARS, InvalidationReason
from terragon_ingest.kit.openapi import NO_NUL_PATTERN, Text

GithubName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=GITHUB_NAME_MAX_CHARS, pattern=NO_NUL_PATTERN)
]
"""A repo full name or a login; compared case-insensitively (CONTRACT §5)."""


class WebhookResult(msgspec.Struct, rename="camel"):
    """`POST /api/webhooks/github`: `applied`, `duplicate` or `ignored`, and keys invalidated."""

    status: str
    event: str
    keys_deleted: int = 0


class InvalidationCreate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`POST /api/internal/access/invalidate`: no `userId` → every cached user of the repo."""

    repo_full_name: Text
    reason: InvalidationReason
    user_id: Text | None = None


class InvalidationResult(msgspec.Struct, rename="camel"):
    keys_deleted: int


class GithubAccountUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`PUT /api/internal/access/github-accounts/{userId}`: the user's GitHub login."""

    github_login: Text


class GithubAccount(msgspec.Struct, rename="camel"):
    user_id: str
    github_login: Text


class CollaboratorGrant(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`PUT /api/internal/access/collaborators`: the platform grants (or re-grants) access."""

    repo_full_name: GithubName
    github_login: GithubName


class CollaboratorGranted(msgspec.Struct, rename="camel"):
    repo_full_name: str
    github_login: str
    keys_deleted: int
