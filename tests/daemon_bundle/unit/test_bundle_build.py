"""`terragon-bundle build`: a byte-for-byte reproducible zipapp that runs on Python >= 3.10."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import terragon_core
from terragon_daemon_bundle.builder import (
    DEFAULT_DIST_DIR,
    DEFAULT_SOURCE_DIR,
    EMBEDDED_MANIFEST,
    SHEBANG,
    ZIP_EPOCH,
    build,
    render_bundle,
)
from terragon_daemon_bundle.check import check
from terragon_daemon_bundle.manifest import canonical_json
from tests.daemon_bundle.support import python310


def copy_source(target: Path) -> Path:
    return Path(
        shutil.copytree(
            DEFAULT_SOURCE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    )


def test_build_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first = build(dist_dir=tmp_path / "one")
    second = build(dist_dir=tmp_path / "two")
    for name in ("terragon-daemon.pyz", "manifest.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert first.pyz == second.pyz


def test_source_location_and_bytecode_caches_do_not_matter(tmp_path: Path) -> None:
    elsewhere = copy_source(tmp_path / "some" / "other" / "place" / "terragon_daemon")
    cache = elsewhere / "__pycache__"
    cache.mkdir()
    (cache / "cli.cpython-311.pyc").write_bytes(b"\x00junk")
    (elsewhere / "stray.pyc").write_bytes(b"\x00junk")
    assert render_bundle(elsewhere).pyz == render_bundle().pyz


def test_archive_layout_is_pinned(tmp_path: Path) -> None:
    bundle = build(dist_dir=tmp_path)
    assert bundle.pyz.startswith(SHEBANG)
    with zipfile.ZipFile(io.BytesIO(bundle.pyz)) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert "__main__.py" in names and EMBEDDED_MANIFEST in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if n.startswith("/") or str(Path.home()) in n]
        for info in infos:
            assert info.date_time == ZIP_EPOCH
            assert info.compress_type == zipfile.ZIP_STORED
            assert stat.S_IMODE(info.external_attr >> 16) == 0o644
        for name in names:
            assert str(DEFAULT_SOURCE_DIR) not in archive.read(name).decode("utf-8")
    assert stat.S_IMODE((tmp_path / "terragon-daemon.pyz").stat().st_mode) == 0o755


def test_manifest_describes_sources_and_contract(tmp_path: Path) -> None:
    bundle = build(dist_dir=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == bundle.manifest
    with zipfile.ZipFile(tmp_path / "terragon-daemon.pyz") as archive:
        assert archive.read(EMBEDDED_MANIFEST) == (tmp_path / "manifest.json").read_bytes()
    assert manifest["daemonVersion"] == "0.1.0"
    assert manifest["envelopeContractVersion"] == terragon_core.ENVELOPE_CONTRACT_VERSION
    schema = canonical_json(terragon_core.envelope_json_schema())
    assert manifest["envelopeSchemaSha256"] == hashlib.sha256(schema).hexdigest()
    on_disk = {
        f"terragon_daemon/{p.relative_to(DEFAULT_SOURCE_DIR).as_posix()}": hashlib.sha256(
            p.read_bytes()
        ).hexdigest()
        for p in DEFAULT_SOURCE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert manifest["sources"] == on_disk


def _run(python: str, pyz: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(pyz), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_bundle_runs_help_and_manifest(tmp_path: Path) -> None:
    build(dist_dir=tmp_path)
    pyz = tmp_path / "terragon-daemon.pyz"
    done = _run(sys.executable, pyz, "--help")
    assert done.returncode == 0, done.stderr
    assert "--spool-dir" in done.stdout and "--payload-version" in done.stdout
    done = _run(sys.executable, pyz, "--manifest")
    assert json.loads(done.stdout) == json.loads((tmp_path / "manifest.json").read_text())


def test_bundle_runs_on_python_3_10(tmp_path: Path) -> None:
    python = python310()
    if python is None:
        pytest.skip("no Python 3.10 interpreter on this machine (set TERRAGON_TEST_PYTHON310)")
    build(dist_dir=tmp_path)
    done = _run(python, tmp_path / "terragon-daemon.pyz", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: terragon-daemon" in done.stdout


def test_committed_dist_is_current() -> None:
    """The CI parity check, read-only on the committed dist."""
    result = check(DEFAULT_DIST_DIR)
    assert result.ok, "\n".join(result.problems) + "\nrun `uv run terragon-bundle build`"
