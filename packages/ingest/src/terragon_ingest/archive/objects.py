"""Offloaded quarantine payloads in the object store: the store retention deletes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import obstore
import structlog
from obstore.store import LocalStore, from_url

if TYPE_CHECKING:
    from pathlib import Path

    from obstore.store import ObjectStore

log = structlog.get_logger()


def object_store(url: str | None, data_dir: Path, s3_endpoint: str | None = None) -> ObjectStore:
    """`OBJECT_STORE_URL` (`s3://…`, `file:///…`), or `<data-dir>/objects` when unset."""
    if not url:
        return LocalStore(data_dir / "objects", mkdir=True)
    if url.startswith("s3://") and s3_endpoint:
        return from_url(url, endpoint=s3_endpoint)
    return from_url(url)


def delete_objects(store: ObjectStore, keys: list[str]) -> int:
    """Delete `keys`; a key already gone is fine. Blocking: call it from a thread."""
    deleted = 0
    for key in keys:
        try:
            obstore.delete(store, key)
            deleted += 1
        except FileNotFoundError:
            continue
    log.info("quarantine_objects_deleted", deleted=deleted, requested=len(keys))
    return deleted
