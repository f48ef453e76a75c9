"""What the dashboard keeps between script runs: one DuckDB over the archive per server process,
reopened only when the archive's manifest changed, and the queries' results keyed by that
manifest's fingerprint.

Every widget change, reload or refresh reruns the whole script; before this each run opened a new
DuckDB, listed the archive and ran every query again (seconds per run on a month of minutely
aggregates, tens of seconds from a bucket). Now:

- `snapshot(archive)`: the process's `ArchiveReader` (`st.cache_resource`) lists the archive at
  most every `MANIFEST_SECONDS` (one listing: a directory walk, or one bucket listing) and builds
  new views only when the listing differs (a rollup rewrote a file, a day was added or compacted);
- `query(name, snap, ...)`: `terragon_dashboard.archive.<name>` through `st.cache_data`, keyed by
  the archive, its fingerprint and the arguments: a rerun with the same filters reads nothing, a
  new rollup changes the fingerprint, so no result outlives the files it came from.

`warm_up` runs once when the server starts (its lifespan, `server.py`): it imports the page's
libraries and fills these caches for the default view, so the first browser does not wait for
them (it logs `dashboard_warm` when done).

The DuckDB connection is shared by every session of the process; its queries run one at a time
(a lock: Streamlit runs sessions in threads, and a bucket's Arrow datasets are registered on that
one connection).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import pandas as pd
import streamlit as st

from terragon_dashboard import archive, log
from terragon_dashboard.source import Manifest, add_views, list_archive

MANIFEST_SECONDS: Final = 5.0
"""How long a listing of the archive is trusted: the rollup writes once a minute, and a reload
within these seconds reuses the last listing instead of walking the archive (or the bucket)."""
QUERY_ENTRIES: Final = 256
"""Query results kept per process (filters, dimensions and fingerprints seen recently)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The archive as one listing saw it: what the app passes to `query`."""

    reader: ArchiveReader
    fingerprint: str

    @property
    def archive(self) -> str:
        return self.reader.archive


class ArchiveReader:
    """The archive's views in one in-memory DuckDB, rebuilt when the manifest changes."""

    def __init__(self, archive: str, manifest_seconds: float = MANIFEST_SECONDS) -> None:
        self.archive = archive
        self.manifest_seconds = manifest_seconds
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._manifest: Manifest | None = None
        self._listed_at = float("-inf")
        self._mirror: Path | None = None
        self.opened = 0
        """Views built so far (tests: a new day reopens them, a rerun does not)."""

    @property
    def mirror(self) -> Path | None:
        """The local copies of a bucket's aggregates (None for a local archive)."""
        return self._mirror

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._con is None or now - self._listed_at >= self.manifest_seconds:
                manifest = list_archive(self.archive)
                self._listed_at = now
                if self._con is None or manifest != self._manifest:
                    self._open(manifest)
            assert self._manifest is not None
            return Snapshot(self, self._manifest.fingerprint)

    def _open(self, manifest: Manifest) -> None:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        try:
            if self.archive.startswith("s3://") and self._mirror is None:
                self._mirror = Path(tempfile.mkdtemp(prefix="terragon-dashboard-mirror-"))
            add_views(con, self.archive, manifest, self._mirror)
        except BaseException:
            con.close()
            raise
        if self._con is not None:
            self._con.close()
        self._con, self._manifest = con, manifest
        self.opened += 1

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, held by this thread alone for the block."""
        with self._lock:
            if self._con is None:
                self.snapshot()
            assert self._con is not None
            yield self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            if self._mirror is not None:
                shutil.rmtree(self._mirror, ignore_errors=True)
                self._mirror = None


@st.cache_resource(show_spinner=False, on_release=ArchiveReader.close)
def reader(archive: str) -> ArchiveReader:
    """The process's reader of `archive` (shared by every session)."""
    return ArchiveReader(archive)


def snapshot(archive_location: Path | str) -> Snapshot:
    """The archive as it is now (listed at most every `MANIFEST_SECONDS`); raises
    `source.ArchiveUnreachable` when a bucket cannot be listed."""
    return reader(str(archive_location)).snapshot()


def _snapshot_key(snap: Snapshot) -> tuple[str, str]:
    return snap.archive, snap.fingerprint


@st.cache_data(
    show_spinner=False,
    max_entries=QUERY_ENTRIES,
    hash_funcs={Snapshot: _snapshot_key},
)
def _query(name: str, snap: Snapshot, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    function = getattr(archive, name)
    with snap.reader.connection() as con:
        return function(con, *args, **kwargs)


def recent_rows(
    snap: Snapshot, filters: archive.Filters, limit: int = 200, **kwargs: Any
) -> pd.DataFrame:
    """`archive.recent_rows`, asked one day at a time from the range's last day back, until
    `limit` rows are found: the newest rows are nearly always in the last day or two, and a day
    is one file (or today's hour files) where the whole range is every file of the month; the
    same rows as one query over the range (days are disjoint and read newest first)."""
    frames: list[pd.DataFrame] = []
    found = 0
    day = filters.end
    while day >= filters.start and found < limit:
        one = dataclasses.replace(filters, start=day, end=day)
        frame = query("recent_rows", snap, one, limit, **kwargs)
        if not frame.empty:
            frames.append(frame)
            found += len(frame)
        day -= timedelta(days=1)
    if not frames:
        return query("recent_rows", snap, filters, limit, **kwargs)
    return pd.concat(frames, ignore_index=True).head(limit)


def query(name: str, snap: Snapshot, *args: Any, **kwargs: Any) -> Any:
    """`archive.<name>(connection, *args, **kwargs)`, computed once per archive fingerprint and
    arguments (`Filters` and the dimension are hashed by value)."""
    return _query(name, snap, args, kwargs)


def warm_up(archive_location: Path | str) -> None:
    """What the page's first run would do before drawing (the default view: the archive's last
    30 days by repo, no filter): imports, the archive's views, the default queries and the
    Vega-Lite schema Altair loads for its first chart. Failures are the page's to report."""
    started = time.monotonic()
    try:
        from terragon_dashboard.charts import trend_chart

        snap = snapshot(archive_location)
        choice = query("choices", snap)
        first, last = archive.default_range(choice, datetime.now(UTC).date())
        filters = archive.Filters(start=first, end=last)
        query("trend", snap, filters, "repo")
        query("top_offenders", snap, filters, "repo", rank_by=archive.RANKINGS[0])
        recent_rows(snap, filters, offender=None)
        empty = pd.DataFrame({"bucket": [], "series": [], "per_minute": []})
        trend_chart(empty, title="", threshold=0, x_title="").to_dict()
    except Exception as exc:  # the first run meets it again and shows it
        log.event("warning", "dashboard_warm_up_failed", error=str(exc).splitlines()[0])
        return
    log.event("info", "dashboard_warm", seconds=round(time.monotonic() - started, 2))


@contextlib.asynccontextmanager
async def warming(archive_location: Path | str) -> AsyncIterator[None]:
    """A server lifespan that starts `warm_up` in the background (the server answers meanwhile;
    a run that needs a value being computed waits for it, Streamlit's caches lock per key)."""
    threading.Thread(
        target=warm_up, args=(archive_location,), name="dashboard-warm-up", daemon=True
    ).start()
    yield
