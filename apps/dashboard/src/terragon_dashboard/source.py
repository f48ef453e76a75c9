"""Where the dashboard finds the archive: a local directory, or a bucket (`s3://bucket/prefix`,
the archive replicas on several hosts share). Read-only.

A bucket is read with pyarrow's S3 filesystem into Arrow datasets that DuckDB scans: DuckDB's
`httpfs` extension cannot be loaded without internet, and pyarrow's reader measured faster than
DuckDB over an fsspec filesystem (the project README, "Archive on object storage"). The endpoint,
region, credentials and timeout come from the same variables the ingest service reads
(`OBJECT_STORE_S3_ENDPOINT`, `AWS_*`, `OBJECT_STORE_TIMEOUT`); every request is bounded.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from terragon_core import ArchiveDataset, archive_view_sql

SETTING = "TERRAGON_ARCHIVE_URL"


class ArchiveUnreachable(RuntimeError):
    """The archive's bucket could not be listed (the message names what to check)."""


def add_views(con: duckdb.DuckDBPyConnection, archive: Path | str) -> None:
    """One view per dataset over the archive at `archive` (a directory or an `s3://` URL)."""
    if str(archive).startswith("s3://"):
        _add_bucket_views(con, str(archive))
        return
    root = Path(archive)
    for dataset in ArchiveDataset:
        has_files = any((root / dataset.value).glob("day=*/*.parquet"))
        con.execute(archive_view_sql(dataset, str(root) if has_files else None))


def _s3_filesystem():  # pyarrow's types are partly untyped
    import pyarrow.fs as pafs

    timeout = float(os.environ.get("OBJECT_STORE_TIMEOUT") or 30)
    kwargs: dict[str, object] = {}
    if endpoint := os.environ.get("OBJECT_STORE_S3_ENDPOINT"):
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        kwargs["scheme"] = parsed.scheme or "https"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return pafs.S3FileSystem(
        region=region,
        connect_timeout=min(timeout, 5.0),
        request_timeout=timeout,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        **kwargs,
    )


def _add_bucket_views(con: duckdb.DuckDBPyConnection, url: str) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    parsed = urlparse(url)
    base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    fs = _s3_filesystem()
    try:
        # an archive not written yet is empty; a bucket that does not exist is a wrong setting
        if fs.get_file_info(parsed.netloc).type == pafs.FileType.NotFound:
            raise OSError(f"bucket {parsed.netloc!r} does not exist")
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        endpoint = os.environ.get("OBJECT_STORE_S3_ENDPOINT") or "AWS's own"
        raise ArchiveUnreachable(
            f"archive {url!r} ({SETTING}) cannot be listed: {str(exc).splitlines()[0]}; check "
            f"{SETTING}, OBJECT_STORE_S3_ENDPOINT ({endpoint}) and AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY / AWS_REGION"
        ) from exc
    paths = [i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")]
    day = ds.partitioning(pa.schema([("day", pa.date32())]), flavor="hive")
    for dataset in ArchiveDataset:
        root = f"{base}/{dataset.value}"
        mine = [p for p in paths if p.startswith(f"{root}/day=")]
        if not mine:
            con.execute(archive_view_sql(dataset, None))
            continue
        relation = f"_{dataset.value}_files"
        files = ds.dataset(
            mine, filesystem=fs, format="parquet", partitioning=day, partition_base_dir=root
        )
        con.register(relation, files)
        con.execute(archive_view_sql(dataset, None, relation=relation))
