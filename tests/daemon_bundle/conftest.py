"""Fixtures for the daemon and bundle tests (no database: these run without the service)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_bundle.support import FakeIngest, make_git_repo


@pytest.fixture(name="ingest")
def fx_ingest() -> Iterator[FakeIngest]:
    server = FakeIngest()
    yield server
    server.close()


@pytest.fixture(name="repo")
def fx_repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "checkout")


@pytest.fixture(name="spool_dir")
def fx_spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture(name="short_dir")
def fx_short_dir() -> Iterator[Path]:
    """A short path for Unix sockets (108-byte limit; pytest's tmp_path can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="tgd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
