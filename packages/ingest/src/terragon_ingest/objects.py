"""The object store, through obstore: whole quarantined envelopes, written by the daemon-event
domain (offload), read by its replay, deleted by its sweep (orphans) and by archive retention.
Neutral ground: it imports no domain, so both domains can use it.

`OBJECT_STORE_URL` unset → a local directory `<DATA_DIR>/objects`; `file:///dir` → that directory;
`s3://bucket/prefix` → S3 or R2 (endpoint from `OBJECT_STORE_S3_ENDPOINT`, credentials from the
usual `AWS_*` variables). Calls are obstore's synchronous API run in a worker thread: the async API
was seen to abort the interpreter at exit (FIELD-NOTES "Object storage").

`open_store` is the one way to reach a bucket (the archive uses it too): every call is bounded
(`OBJECT_STORE_TIMEOUT` per request, two retries) so a wrong endpoint fails instead of hanging,
and `store_error` turns obstore's multi-line debug dump into one line naming the setting to check
(it never carries the secret: requests are signed, the key is not in them).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
import structlog
from obstore.store import LocalStore, from_url

from terragon_ingest.errors import ObjectStoreUnavailable

if TYPE_CHECKING:
    from obstore.store import ObjectStore

    from terragon_ingest.settings import ObjectStoreSettings, Settings

log = structlog.get_logger()

MAX_RETRIES = 2
"""Retries of one request: enough for a dropped connection, few enough to fail in seconds."""


def open_store(url: str, settings: ObjectStoreSettings) -> ObjectStore:
    """An obstore store for `s3://bucket/prefix` (or any URL obstore knows), bounded in time.

    Endpoint from `OBJECT_STORE_S3_ENDPOINT` (plain http allowed only when it says `http://`),
    credentials and region from the usual `AWS_*` variables."""
    timeout = settings.TIMEOUT
    options: dict[str, object] = {
        "connect_timeout": f"{min(timeout, 5.0)}s",
        "timeout": f"{timeout}s",
    }
    config: dict[str, object] = {}
    if settings.S3_ENDPOINT:
        config["endpoint"] = settings.S3_ENDPOINT
        options["allow_http"] = settings.S3_ENDPOINT.startswith("http://")
    retry = {
        "max_retries": MAX_RETRIES,
        "retry_timeout": timedelta(seconds=timeout * (MAX_RETRIES + 1)),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2.0,
        },
    }
    return from_url(url, client_options=options, retry_config=retry, **config)  # type: ignore[arg-type]


def store_error(exc: BaseException) -> str:
    """obstore's error in one line (its text goes on with a multi-line debug dump)."""
    text = str(exc).split("\n", 1)[0].strip()
    return text[:500] or type(exc).__name__


def store_hint(setting: str, settings: ObjectStoreSettings) -> str:
    """What to check when the store at `setting` fails."""
    endpoint = settings.S3_ENDPOINT or "AWS's own"
    return (
        f"check {setting} (the bucket must exist), OBJECT_STORE_S3_ENDPOINT ({endpoint}) and "
        "the credentials AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION"
    )


class QuarantineObjects:
    """Put, get, delete and list whole quarantined envelopes by key."""

    def __init__(self, store: ObjectStore, description: str, hint: str = "") -> None:
        self.store = store
        self.description = description
        self.hint = hint or "check the store's credentials and reachability"

    @classmethod
    def from_settings(cls, settings: Settings) -> QuarantineObjects:
        url = settings.objects.URL
        if not url:
            root = settings.server.DATA_DIR / "objects"
            return cls(LocalStore(root, mkdir=True), f"local:{root}")
        if url.startswith("file://") or "://" not in url:  # a directory (docs/configuration.md)
            root = Path(url.removeprefix("file://")).expanduser()
            return cls(LocalStore(root, mkdir=True), f"local:{root}")
        return cls(
            open_store(url, settings.objects),
            url,
            store_hint("OBJECT_STORE_URL", settings.objects),
        )

    async def put(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(obstore.put, self.store, key, data)
        except Exception as exc:
            raise ObjectStoreUnavailable(
                f"object store {self.description!r} refused {key!r}: {store_error(exc)}; "
                f"the daemon retries; {self.hint}"
            ) from exc

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

        def _get() -> bytes | None:
            try:
                return bytes(obstore.get(self.store, key).bytes())
            except FileNotFoundError:
                return None

        try:
            return await asyncio.to_thread(_get)
        except Exception as exc:
            raise ObjectStoreUnavailable(
                f"object store {self.description!r}: read of {key!r} failed: {store_error(exc)}; "
                f"{self.hint}"
            ) from exc

    async def delete(self, key: str) -> bool:
        """Delete `key`; False when it was already gone."""

        def _delete() -> bool:
            try:
                obstore.delete(self.store, key)
            except FileNotFoundError:
                return False
            return True

        try:
            return await asyncio.to_thread(_delete)
        except Exception as exc:
            raise ObjectStoreUnavailable(
                f"object store {self.description!r}: delete of {key!r} failed: "
                f"{store_error(exc)}; {self.hint}"
            ) from exc

    async def delete_many(self, keys: list[str]) -> int:
        """Delete `keys` (retention); keys already gone are fine. Returns how many were deleted."""
        deleted = sum([await self.delete(key) for key in keys])
        log.info("quarantine_objects_deleted", deleted=deleted, requested=len(keys))
        return deleted
