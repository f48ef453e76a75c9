"""Where the archive's files are read from: a local directory or a bucket (`s3://bucket/prefix`).

The one reader of the archive's location, shared by the service (`terragon_ingest.archive.location`,
which also writes and rewrites files) and the dashboard (`terragon_dashboard.source`, which keeps a
local mirror of the small datasets). Both take a listing (`list_archive`: the live files,
`live_files`, with size and modification time) and open one view per dataset over it
(`add_views`).

A bucket is read with pyarrow's S3 filesystem into Arrow datasets that DuckDB scans: DuckDB's
`httpfs` extension cannot be loaded offline, and pyarrow's reader measured ~2x faster than
DuckDB over an fsspec filesystem (obstore's) on the same server (README "Archive on object
storage"). Every request is bounded (`S3Reading`: timeouts, attempts); credentials are the
`AWS_*` variables, which pyarrow reads itself.

Core stays free of I/O libraries at import: pyarrow is imported inside the functions (the service
and the dashboard, its only callers, depend on it), and DuckDB not at all: the caller passes its
connection (`ViewConnection`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from terragon_core.archive import ArchiveDataset, archive_view_sql, live_files

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

SETTING = "TERRAGON_ARCHIVE_URL"
"""The setting that puts the archive in a bucket (what a failure to reach it names)."""


class ViewConnection(Protocol):
    """What the views are opened on (a DuckDB connection)."""

    def execute(self, query: str, /) -> Any: ...

    def register(self, view_name: str, python_object: object, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class S3Reading:
    """How a bucket is reached: the object store's endpoint (`OBJECT_STORE_S3_ENDPOINT`; None =
    AWS's own), its timeout (`OBJECT_STORE_TIMEOUT`), the region (`AWS_REGION` /
    `AWS_DEFAULT_REGION`; None = us-east-1) and the attempts per request."""

    endpoint: str | None = None
    timeout: float = 30.0
    region: str | None = None
    max_attempts: int = 3


def is_bucket(archive: Path | str) -> bool:
    return str(archive).startswith("s3://")


def bucket_base(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` → (`bucket`, `bucket/prefix`): the bucket, and the base of every path
    pyarrow's filesystem lists under it."""
    parsed = urlparse(url)
    return parsed.netloc, f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")


def s3_filesystem(reading: S3Reading) -> pafs.S3FileSystem:
    """pyarrow's S3 client with the endpoint, region and bounded timeouts of `reading`."""
    import pyarrow.fs as pafs

    kwargs: dict[str, object] = {}
    if reading.endpoint:
        endpoint = urlparse(reading.endpoint)
        kwargs["endpoint_override"] = endpoint.netloc + endpoint.path.rstrip("/")
        kwargs["scheme"] = endpoint.scheme or "https"
    return pafs.S3FileSystem(
        region=reading.region or "us-east-1",
        connect_timeout=min(reading.timeout, 5.0),
        request_timeout=reading.timeout,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=reading.max_attempts),
        **kwargs,
    )


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

    @property
    def base(self) -> str:
        """What every listed path starts with: the directory, or `bucket/prefix`."""
        return bucket_base(self.archive)[1] if is_bucket(self.archive) else self.archive

    def paths(self, dataset: ArchiveDataset) -> list[str]:
        prefix = f"{self.base.rstrip('/')}/{dataset.value}/day="
        return [path for path, _, _ in self.files if path.startswith(prefix)]


def list_archive(archive: Path | str, reading: S3Reading | None = None) -> Manifest:
    """The live files of the archive at `archive` (a directory, or an `s3://` URL: one listing,
    through `reading`). A bucket that cannot be listed (or does not exist) raises `OSError`; an
    archive not written yet is empty."""
    if is_bucket(archive):
        return _list_bucket(str(archive), reading or S3Reading())
    root = Path(archive)
    found: dict[str, tuple[int, int]] = {}
    for dataset in ArchiveDataset:
        for path in (root / dataset.value).glob("day=*/*.parquet"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # compacted away since the glob
                continue
            found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return Manifest(str(root), tuple((p, *found[p]) for p in live_files(found)))


def _list_bucket(url: str, reading: S3Reading) -> Manifest:
    import pyarrow.fs as pafs

    bucket, base = bucket_base(url)
    fs = s3_filesystem(reading)
    # an archive not written yet is empty; a bucket that does not exist is a wrong setting
    if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
        raise OSError(f"bucket {bucket!r} does not exist")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    found = {
        i.path: (int(i.size or 0), int(i.mtime_ns or 0))
        for i in infos
        if i.type == pafs.FileType.File
    }
    return Manifest(url, tuple((p, *found[p]) for p in live_files(found)))


def add_views(con: ViewConnection, manifest: Manifest, reading: S3Reading | None = None) -> None:
    """One view per dataset (`archive_view_sql`) over the files of `manifest`."""
    fs = s3_filesystem(reading or S3Reading()) if is_bucket(manifest.archive) else None
    for dataset in ArchiveDataset:
        add_view(con, manifest, dataset, fs)


def add_view(
    con: ViewConnection,
    manifest: Manifest,
    dataset: ArchiveDataset,
    fs: pafs.FileSystem | None = None,
    files: list[str] | None = None,
) -> None:
    """The view of one dataset: over local `files` when given (a mirror's copies), else over the
    manifest's paths: local files directly, a bucket's through `fs` (`s3_filesystem`)."""
    if files is not None:
        con.execute(archive_view_sql(dataset, None, files=files))
        return
    paths = manifest.paths(dataset)
    if fs is None:
        con.execute(archive_view_sql(dataset, None, files=paths))
        return
    if not paths:
        con.execute(archive_view_sql(dataset, None))
        return
    relation = f"_{dataset.value}_files"
    root = f"{manifest.base}/{dataset.value}"
    con.register(relation, _arrow_dataset(fs, root, paths))
    con.execute(archive_view_sql(dataset, None, relation=relation))


def _arrow_dataset(fs: pafs.FileSystem, root: str, paths: list[str]) -> ds.Dataset:
    import pyarrow as pa
    import pyarrow.dataset as ds

    day = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
    return ds.dataset(
        paths, filesystem=fs, format="parquet", partitioning=day, partition_base_dir=root
    )
