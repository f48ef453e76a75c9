"""Where the dashboard finds the archive: a local directory, or a bucket (`s3://bucket/prefix`,
the archive replicas on several hosts share). Read-only, through the one reader of the archive's
location (`terragon_core.archive_location`, which the service reads through too).

The endpoint, region, credentials and timeout come from the same variables the ingest service
reads (`OBJECT_STORE_S3_ENDPOINT`, `AWS_*`, `OBJECT_STORE_TIMEOUT`); every request is bounded. Why pyarrow
(not DuckDB's `httpfs`, which cannot load offline): docs/performance.md, "Archive read path".
`list_archive` takes the archive's manifest (its live files with size and modification time) in
one listing; `cache.py` reopens the views only when that manifest changed. What the dashboard adds:
from a bucket, the aggregate datasets (`MIRRORED`: a few MB, read by every chart) are copied once
per object version into a local mirror and scanned there; rows and preview events stay in the
bucket (they can be large, and only the drill-down reads them).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import duckdb

from terragon_core import ArchiveDataset
from terragon_core.archive_location import (
    SETTING,
    Manifest,
    S3Reading,
    add_view,
    is_bucket,
    s3_filesystem,
)
from terragon_core.archive_location import list_archive as _list
from terragon_core.bucket_settings import BucketSettings

__all__ = ["MIRRORED", "ArchiveUnreachable", "Manifest", "add_views", "list_archive"]

MIRRORED: Final = (ArchiveDataset.QUARANTINE_MINUTELY, ArchiveDataset.QUARANTINE_DAILY)
"""Datasets read from a local copy when the archive is in a bucket."""
_DOWNLOADS: Final = 16
"""Objects fetched at once into the mirror (latency-bound: one request each)."""


class ArchiveUnreachable(RuntimeError):
    """The archive's bucket could not be listed (the message names what to check)."""


def _reading(bucket: BucketSettings | None = None) -> S3Reading:
    bucket = bucket or BucketSettings()
    return S3Reading(endpoint=bucket.S3_ENDPOINT, timeout=bucket.TIMEOUT, region=bucket.REGION)


def list_archive(archive: Path | str) -> Manifest:
    """The live files of the archive at `archive` (a directory, or an `s3://` URL: one listing)."""
    try:
        return _list(archive, _reading())
    except OSError as exc:
        if not is_bucket(archive):
            raise
        endpoint = BucketSettings().S3_ENDPOINT or "AWS's own"
        raise ArchiveUnreachable(
            f"archive {str(archive)!r} ({SETTING}) cannot be listed: "
            f"{str(exc).splitlines()[0]}; check {SETTING}, OBJECT_STORE_S3_ENDPOINT ({endpoint}) "
            "and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION"
        ) from exc


def add_views(
    con: duckdb.DuckDBPyConnection,
    archive: Path | str,
    manifest: Manifest | None = None,
    mirror: Path | None = None,
) -> None:
    """One view per dataset over the archive at `archive` (a directory or an `s3://` URL), over
    the files of `manifest` (default: a listing taken now). From a bucket, with `mirror`, the
    `MIRRORED` datasets are read from local copies kept in that directory."""
    manifest = manifest or list_archive(archive)
    fs = s3_filesystem(_reading()) if is_bucket(archive) else None
    for dataset in ArchiveDataset:
        copies = None
        if fs is not None and mirror is not None and dataset in MIRRORED:
            try:
                copies = _mirror(fs, manifest, dataset, mirror)
            except OSError as exc:
                raise ArchiveUnreachable(
                    f"archive {str(archive)!r} ({SETTING}): reading {dataset.value} failed: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
        add_view(con, manifest, dataset, fs, files=copies)


def _mirror(fs: object, manifest: Manifest, dataset: ArchiveDataset, mirror: Path) -> list[str]:
    """Local copies of the dataset's objects in `mirror`, one per object version (size and
    modification time in the name): only new or rewritten objects are fetched; copies of
    objects that are gone are removed. Returns the copies' paths."""
    base = manifest.base
    wanted: dict[Path, str] = {}
    for path, size, mtime in manifest.files:
        if path.startswith(f"{base}/{dataset.value}/day="):
            rel = Path(path[len(base) + 1 :])
            wanted[mirror / rel.parent / f"{rel.stem}.{size}.{mtime}.parquet"] = path
    missing = [local for local in wanted if not local.exists()]

    def fetch(local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        with fs.open_input_stream(wanted[local]) as source, tmp.open("wb") as out:  # type: ignore[attr-defined]
            shutil.copyfileobj(source, out)
        tmp.replace(local)

    with ThreadPoolExecutor(_DOWNLOADS) as pool:
        list(pool.map(fetch, missing))
    for old in (mirror / dataset.value).glob("day=*/*.parquet"):
        if old not in wanted:
            old.unlink(missing_ok=True)
    return sorted(str(p) for p in wanted)
