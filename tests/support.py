"""Helpers shared by tests: settings for a test database, API shortcuts."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

from terragon_ingest.settings import Settings


def settings_for(
    database_url: str,
    valkey_url: str,
    data_dir: Path,
    *,
    preview: dict[str, Any] | None = None,
    **server: Any,
) -> Settings:
    """Settings for a test: the given servers, no background jobs, and preview upstreams on
    127.0.0.1 allowed (as `terragon up` allows them; SSRF tests pass `preview=` to refuse)."""
    base = Settings()
    return dataclasses.replace(
        base,
        preview=dataclasses.replace(
            base.preview, **{"ALLOW_PRIVATE_UPSTREAM": True, **(preview or {})}
        ),
        db=dataclasses.replace(base.db, URL=database_url, POOL_MIN=1, POOL_MAX=8),
        valkey=dataclasses.replace(base.valkey, URL=valkey_url),
        server=dataclasses.replace(
            base.server,
            DATA_DIR=data_dir,
            BACKGROUND_JOBS=False,
            PUBLIC_URL="http://testserver.local",
            **server,
        ),
    )


def good_secrets() -> dict[str, str]:
    """The three secrets `terragon serve` requires, each made as an operator is told to make it
    (`MAKE_SECRET_COMMAND`): for tests and tools that start a real `serve`."""
    names = ("TERRAGON_INTERNAL_TOKEN", "GITHUB_WEBHOOK_SECRET", "TERRAGON_SIGNING_SECRET")
    return {name: secrets.token_urlsafe(32) for name in names}


def thread_body(thread_id: str = "thread-1", **overrides: Any) -> dict[str, Any]:
    body = {
        "threadId": thread_id,
        "userId": "user-1",
        "repoFullName": "acme/web",
        "sandboxProvider": "manual",
        "codesandboxId": f"sb-{thread_id}",
    }
    body.update(overrides)
    return body
