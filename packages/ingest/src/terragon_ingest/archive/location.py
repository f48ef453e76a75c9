"""Where the archive's files live: a local directory or a bucket (`TERRAGON_ARCHIVE_URL`).

`files.py` says what each file holds; this module says how a file is found, read, published and
opened for queries, the same way for both places:

- **publish**: the file is written whole to a local temporary file first. Locally it is then
  renamed into place; on S3 it is uploaded to its final key in one PUT (a multipart upload only
  becomes visible when completed), so a reader sees the old object or the new one, never half.
- **read for a rewrite** (the rollup merges an hour's old rows): locally the file itself; on S3 a
  local copy fetched once per run (the rollup lock makes this process the only writer meanwhile).
- **query** (`open_archive`): through `terragon_core.archive_location`, the one reader of both
  places, which the dashboard reads through too: one listing of the live files
  (`terragon_core.live_files`: a compacted day's `day.parquet`), then locally DuckDB's
  `read_parquet` over them, on S3 pyarrow's S3 filesystem into Arrow datasets that DuckDB scans
  (why: docs/performance.md "Archive read path").

Writes go through `objects.open_store` (obstore, the project's one S3 writer); the S3 reads use the
same endpoint, region and `AWS_*` credentials, with the same bounded timeouts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import obstore
import structlog

from terragon_core import COMPACT_FILE, live_files
from terragon_core.archive_location import SETTING, S3Reading, add_views, list_archive
from terragon_ingest.errors import ObjectStoreUnavailable
from terragon_ingest.objects import MAX_RETRIES, open_store, store_error, store_hint

if TYPE_CHECKING:
    from obstore.store import ObjectStore

    from terragon_ingest.settings import ObjectStoreSettings, Settings

log = structlog.get_logger()


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB in UTC: the archive's writer and readers never share a database file."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


class LocalArchive:
    """The archive in a local directory (the default: `<data-dir>/archive`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    def __enter__(self) -> LocalArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        return None

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def any_file(self, rel_dir: str) -> bool:
        return any((self.root / rel_dir).glob("*.parquet"))

    def local_copy(self, rel: str) -> Path:
        return self.root / rel

    def local_copies(self, rel_dir: str) -> list[Path]:
        """The day's live files (`live_files`: its compacted file, else its hour files)."""
        found = [str(p) for p in (self.root / rel_dir).glob("*.parquet")]
        return [Path(p) for p in live_files(found)]

    def hour_copies(self, rel_dir: str) -> list[Path]:
        """The day's hour files, compacted or not (what a compaction merges)."""
        return sorted(p for p in (self.root / rel_dir).glob("*.parquet") if p.name != COMPACT_FILE)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    @contextlib.contextmanager
    def publishing(self, rel: str) -> Iterator[Path]:
        """A temporary path to write `rel` to; renamed into place when the block succeeds."""
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            yield tmp
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def open_views(self, con: duckdb.DuckDBPyConnection) -> None:
        add_views(con, list_archive(self.root))


class ObjectArchive:
    """The archive under `s3://bucket/prefix`: what replicas on several hosts share."""

    def __init__(self, url: str, settings: ObjectStoreSettings) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.description = self.url
        self.hint = store_hint(SETTING, settings)
        self.store: ObjectStore = open_store(self.url, settings)
        self._scratch: Path | None = None
        self._copies: dict[str, Path] = {}

    def __enter__(self) -> ObjectArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._copies.clear()

    def _fail(self, doing: str, exc: BaseException) -> ObjectStoreUnavailable:
        return ObjectStoreUnavailable(
            f"archive {self.description!r} ({SETTING}): {doing} failed: {store_error(exc)}; "
            f"{self.hint}"
        )

    def _scratch_path(self, rel: str) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="terragon-archive-"))
        path = self._scratch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _keys(self, rel_dir: str) -> list[str]:
        try:
            found = obstore.list(self.store, prefix=rel_dir.rstrip("/") + "/").collect()
        except Exception as exc:
            raise self._fail(f"listing {rel_dir!r}", exc) from exc
        return sorted(str(meta["path"]) for meta in found)

    def exists(self, rel: str) -> bool:
        if rel in self._copies:
            return True
        try:
            obstore.head(self.store, rel)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._fail(f"reading {rel!r}", exc) from exc
        return True

    def any_file(self, rel_dir: str) -> bool:
        return any(key.endswith(".parquet") for key in self._keys(rel_dir))

    def local_copy(self, rel: str) -> Path:
        """A local copy of `rel`, fetched once per run (and kept when this run published it)."""
        if rel in self._copies:
            return self._copies[rel]
        path = self._scratch_path(rel)
        try:
            path.write_bytes(bytes(obstore.get(self.store, rel).bytes()))
        except Exception as exc:
            raise self._fail(f"reading {rel!r}", exc) from exc
        self._copies[rel] = path
        return path

    def local_copies(self, rel_dir: str) -> list[Path]:
        """The day's live files (`live_files`), fetched once per run."""
        # obstore lists keys relative to the store's prefix, as every other call takes them
        return [self.local_copy(k) for k in live_files(self._keys(rel_dir))]

    def hour_copies(self, rel_dir: str) -> list[Path]:
        """The day's hour files, compacted or not (what a compaction merges)."""
        keys = [k for k in self._keys(rel_dir) if k.endswith(".parquet")]
        return [self.local_copy(k) for k in keys if k.rsplit("/", 1)[-1] != COMPACT_FILE]

    def delete(self, rel: str) -> None:
        try:
            obstore.delete(self.store, rel)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail(f"deleting {rel!r}", exc) from exc
        self._copies.pop(rel, None)

    @contextlib.contextmanager
    def publishing(self, rel: str) -> Iterator[Path]:
        """A local path to write `rel` to; uploaded to its final key when the block succeeds."""
        target = self._scratch_path(rel)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            yield tmp
            try:
                obstore.put(self.store, rel, tmp)
            except Exception as exc:
                raise self._fail(f"writing {rel!r}", exc) from exc
            os.replace(tmp, target)
            self._copies[rel] = target
        finally:
            tmp.unlink(missing_ok=True)

    def open_views(self, con: duckdb.DuckDBPyConnection) -> None:
        reading = s3_reading(self.settings)
        try:
            manifest = list_archive(self.url, reading)
        except OSError as exc:
            raise self._fail("listing the archive", exc) from exc
        add_views(con, manifest, reading)


ArchiveLocation = LocalArchive | ObjectArchive


def s3_reading(settings: ObjectStoreSettings) -> S3Reading:
    """How the archive's reads reach the bucket: the object store's endpoint and timeout, its
    attempts, and the region of the `AWS_*` variables (as obstore reads them)."""
    return S3Reading(
        endpoint=settings.S3_ENDPOINT or None,
        timeout=settings.TIMEOUT,
        region=settings.REGION or None,
        max_attempts=MAX_RETRIES + 1,
    )


def as_location(
    where: Path | str | ArchiveLocation, settings: Settings | None = None
) -> ArchiveLocation:
    """A location from a path, a URL (`s3://…` needs `settings` for the endpoint) or itself."""
    if isinstance(where, LocalArchive | ObjectArchive):
        return where
    text = str(where)
    if text.startswith("s3://"):
        from terragon_ingest.settings import ObjectStoreSettings

        return ObjectArchive(text, settings.objects if settings else ObjectStoreSettings())
    return LocalArchive(Path(text.removeprefix("file://")).resolve())


def from_settings(settings: Settings) -> ArchiveLocation:
    """The archive `TERRAGON_ARCHIVE_URL` / `TERRAGON_ARCHIVE_DIR` point at."""
    return as_location(settings.archive.archive_url(settings.server.DATA_DIR), settings)


def open_archive(where: Path | str | ArchiveLocation) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per dataset (what `terragon archive sql` queries)."""
    location = as_location(where)
    con = connect()
    try:
        location.open_views(con)
    except BaseException:
        con.close()
        raise
    return con
