"""Where the dashboard finds the archive: a local directory, or a bucket (`s3://bucket/prefix`,
the archive replicas on several hosts share). Read-only.

A bucket is read with pyarrow's S3 filesystem into Arrow datasets that DuckDB scans: DuckDB's
`httpfs` extension cannot be loaded without internet, and pyarrow's reader measured faster than
DuckDB over an fsspec filesystem (the project README, "Archive on object storage"). The endpoint,
region, credentials and timeout come from the same variables the ingest service reads
(`OBJECT_STORE_S3_ENDPOINT`, `AWS_*`, `OBJECT_STORE_TIMEOUT`); every request is bounded.

Only the live files are read (`terragon_core.live_files`: a compacted day's `day.parquet` alone).
`list_archive` takes the archive's manifest (its live files with size and modification time) in
one listing; `cache.py` reopens the views only when that manifest changed. From a bucket, the
aggregate datasets (`MIRRORED`: a few MB, read by every chart) are copied once per object version
into a local mirror and scanned there; rows and preview events stay in the bucket (they can be
large, and only the drill-down reads them).
"""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

import duckdb

from terragon_core import ArchiveDataset, archive_view_sql, live_files
from terragon_dashboard.settings import BucketSettings

SETTING = "TERRAGON_ARCHIVE_URL"
MIRRORED: Final = (ArchiveDataset.QUARANTINE_MINUTELY, ArchiveDataset.QUARANTINE_DAILY)
"""Datasets read from a local copy when the archive is in a bucket."""
_DOWNLOADS: Final = 16
"""Objects fetched at once into the mirror (latency-bound: one request each)."""


class ArchiveUnreachable(RuntimeError):
    """The archive's bucket could not be listed (the message names what to check)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The archive's live files at one listing: (path, size, modification time in ns)."""

    archive: str
    files: tuple[tuple[str, int, int], ...]

    @property
    def fingerprint(self) -> str:
        """Equal for two listings of the same files: a new rollup (any file rewritten, a day
        added or compacted) changes it."""
        return hashlib.sha256(repr(self.files).encode()).hexdigest()[:32]

    def paths(self, base: str, dataset: ArchiveDataset) -> list[str]:
        prefix = f"{base.rstrip('/')}/{dataset.value}/day="
        return [path for path, _, _ in self.files if path.startswith(prefix)]


def list_archive(archive: Path | str) -> Manifest:
    """The live files of the archive at `archive` (a directory, or an `s3://` URL: one listing)."""
    if str(archive).startswith("s3://"):
        return _list_bucket(str(archive))
    root = Path(archive)
    found: dict[str, tuple[int, int]] = {}
    for dataset in ArchiveDataset:
        for path in (root / dataset.value).glob("day=*/*.parquet"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # compacted away since the glob
                continue
            found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return Manifest(str(archive), tuple((p, *found[p]) for p in live_files(found)))


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
    if str(archive).startswith("s3://"):
        _add_bucket_views(con, str(archive), manifest, mirror)
        return
    for dataset in ArchiveDataset:
        con.execute(archive_view_sql(dataset, None, files=manifest.paths(str(archive), dataset)))


def _s3_filesystem(bucket: BucketSettings | None = None):  # pyarrow's types are partly untyped
    import pyarrow.fs as pafs

    bucket = bucket or BucketSettings()
    timeout = bucket.TIMEOUT
    kwargs: dict[str, object] = {}
    if endpoint := bucket.S3_ENDPOINT:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(
        region=bucket.REGION,
        connect_timeout=min(timeout, 5.0),
        request_timeout=timeout,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        **kwargs,
    )


def _bucket_base(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.netloc, f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")


def _list_bucket(url: str) -> Manifest:
    import pyarrow.fs as pafs

    bucket, base = _bucket_base(url)
    fs = _s3_filesystem()
    try:
        # an archive not written yet is empty; a bucket that does not exist is a wrong setting
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise OSError(f"bucket {bucket!r} does not exist")
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        endpoint = BucketSettings().S3_ENDPOINT or "AWS's own"
        raise ArchiveUnreachable(
            f"archive {url!r} ({SETTING}) cannot be listed: {str(exc).splitlines()[0]}; check "
            f"{SETTING}, OBJECT_STORE_S3_ENDPOINT ({endpoint}) and AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY / AWS_REGION"
        ) from exc
    found = {
        i.path: (int(i.size or 0), int(i.mtime_ns or 0))
        for i in infos
        if i.type == pafs.FileType.File
    }
    return Manifest(url, tuple((p, *found[p]) for p in live_files(found)))


def _mirror(
    fs: object, manifest: Manifest, base: str, dataset: ArchiveDataset, mirror: Path
) -> list[str]:
    """Local copies of the dataset's objects in `mirror`, one per object version (size and
    modification time in the name): only new or rewritten objects are fetched; copies of
    objects that are gone are removed. Returns the copies' paths."""
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


def _add_bucket_views(
    con: duckdb.DuckDBPyConnection, url: str, manifest: Manifest, mirror: Path | None
) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    _, base = _bucket_base(url)
    fs = _s3_filesystem()
    day = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
    for dataset in ArchiveDataset:
        mine = manifest.paths(base, dataset)
        if not mine:
            con.execute(archive_view_sql(dataset, None))
            continue
        if mirror is not None and dataset in MIRRORED:
            try:
                copies = _mirror(fs, manifest, base, dataset, mirror)
            except OSError as exc:
                raise ArchiveUnreachable(
                    f"archive {url!r} ({SETTING}): reading {dataset.value} failed: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            con.execute(archive_view_sql(dataset, None, files=copies))
            continue
        root = f"{base}/{dataset.value}"
        relation = f"_{dataset.value}_files"
        files = ds.dataset(
            mine, filesystem=fs, format="parquet", partitioning=day, partition_base_dir=root
        )
        con.register(relation, files)
        con.execute(archive_view_sql(dataset, None, relation=relation))
