"""The object store, through obstore: whole quarantined envelopes, written by the daemon-event
domain (offload), read by its replay, deleted by its sweep (orphans) and by archive retention.
Neutral ground: it imports no domain, so both domains can use it.

`OBJECT_STORE_URL` unset → a local directory `<DATA_DIR>/objects`; `file:///dir` → that directory;
`s3://bucket/prefix` → S3 or R2 (endpoint from `OBJECT_STORE_S3_ENDPOINT`, credentials from the
usual `AWS_*` variables). Calls are obstore's synchronous API run in a worker thread: the async API
was seen to abort the interpreter at exit (FIELD-NOTES "Object storage").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import obstore
import structlog
from obstore.store import LocalStore, from_url

from terragon_ingest.errors import ObjectStoreUnavailable

if TYPE_CHECKING:
    from obstore.store import ObjectStore

    from terragon_ingest.settings import Settings

log = structlog.get_logger()


class QuarantineObjects:
    """Put, get, delete and list whole quarantined envelopes by key."""

    def __init__(self, store: ObjectStore, description: str) -> None:
        self.store = store
        self.description = description

    @classmethod
    def from_settings(cls, settings: Settings) -> QuarantineObjects:
        url = settings.objects.URL
        if not url:
            root = settings.server.DATA_DIR / "objects"
            return cls(LocalStore(root, mkdir=True), f"local:{root}")
        if url.startswith("file://"):
            root = url.removeprefix("file://")
            return cls(LocalStore(root, mkdir=True), f"local:{root}")
        if settings.objects.S3_ENDPOINT:
            store = from_url(url, endpoint=settings.objects.S3_ENDPOINT)
        else:
            store = from_url(url)
        return cls(store, url)

    async def put(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(obstore.put, self.store, key, data)
        except Exception as exc:
            raise ObjectStoreUnavailable(
                f"object store {self.description!r} refused {key!r}: {exc}; "
                "the daemon retries, check the store's credentials and reachability"
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
            raise ObjectStoreUnavailable(f"object store read of {key!r} failed: {exc}") from exc

    async def delete(self, key: str) -> bool:
        """Delete `key`; False when it was already gone."""

        def _delete() -> bool:
            try:
                obstore.delete(self.store, key)
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(_delete)

    async def delete_many(self, keys: list[str]) -> int:
        """Delete `keys` (retention); keys already gone are fine. Returns how many were deleted."""
        deleted = sum([await self.delete(key) for key in keys])
        log.info("quarantine_objects_deleted", deleted=deleted, requested=len(keys))
        return deleted
