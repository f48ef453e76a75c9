"""`terragon-bundle check` names the kind of drift. Every case runs on a temp copy."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from terragon_daemon_bundle.builder import DEFAULT_SOURCE_DIR, build
from terragon_daemon_bundle.check import check
from terragon_daemon_bundle.cli import main
from terragon_daemon_bundle.manifest import EnvelopeContract, current_contract


@pytest.fixture(name="work")
def fx_work(tmp_path: Path) -> tuple[Path, Path]:
    """(source copy, dist built from it)."""
    source = Path(
        shutil.copytree(
            DEFAULT_SOURCE_DIR,
            tmp_path / "src" / "terragon_daemon",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    )
    dist = tmp_path / "dist"
    build(source, dist)
    return source, dist


def snapshot(dist: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dist.iterdir())}


def test_fresh_build_checks_ok_and_check_never_writes(work: tuple[Path, Path]) -> None:
    source, dist = work
    before = snapshot(dist)
    result = check(dist, source)
    assert result.ok, result.problems
    assert snapshot(dist) == before


def test_source_edit_without_rebuild(work: tuple[Path, Path]) -> None:
    source, dist = work
    (source / "batcher.py").write_text((source / "batcher.py").read_text() + "\n# tweak\n")
    (source / "extra.py").write_text('"""New."""\n')
    (source / "settings.py").unlink()
    assert check(dist, source).problems == [
        "source file terragon_daemon/batcher.py changed without rebuild",
        "source file terragon_daemon/extra.py added without rebuild",
        "source file terragon_daemon/settings.py removed without rebuild",
    ]


def test_core_envelope_contract_change(work: tuple[Path, Path]) -> None:
    source, dist = work
    now = current_contract()
    changed = EnvelopeContract(version=now.version, schema_sha256="f" * 64)
    assert check(dist, source, contract=changed).problems == [
        f"core envelope contract changed (schema hash {now.schema_sha256[:12]} != ffffffffffff)"
    ]
    bumped = EnvelopeContract(version=now.version + 1, schema_sha256=now.schema_sha256)
    assert check(dist, source, contract=bumped).problems == [
        f"core envelope contract changed (contract version {now.version} != {now.version + 1})"
    ]


def test_hand_edited_pyz(work: tuple[Path, Path]) -> None:
    source, dist = work
    pyz = dist / "terragon-daemon.pyz"
    data = pyz.read_bytes()
    marker = b"Collects agent messages"
    assert data.count(marker) == 1
    pyz.write_bytes(data.replace(marker, b"Collects agent MESSAGES"))  # same length, stored entry
    assert check(dist, source).problems == [
        "dist edited by hand (bytes differ but manifest matches sources: dist/terragon-daemon.pyz)"
    ]


def test_hand_edited_manifest_json(work: tuple[Path, Path]) -> None:
    source, dist = work
    manifest = dist / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"daemonVersion"', '"daemonVersion" '))
    assert check(dist, source).problems == [
        "dist edited by hand (dist/manifest.json differs from the manifest inside "
        "terragon-daemon.pyz)"
    ]


def test_unreadable_pyz(work: tuple[Path, Path]) -> None:
    source, dist = work
    pyz = dist / "terragon-daemon.pyz"
    pyz.write_bytes(pyz.read_bytes()[:1000])
    [problem] = check(dist, source).problems
    assert problem.startswith("dist edited by hand (terragon-daemon.pyz is not a readable bundle")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(pyz)


def test_missing_dist(tmp_path: Path) -> None:
    problems = check(tmp_path / "nothing").problems
    assert problems == [
        "dist/terragon-daemon.pyz missing: run `terragon-bundle build`",
        "dist/manifest.json missing: run `terragon-bundle build`",
    ]


def test_cli_build_and_check(tmp_path: Path, work: tuple[Path, Path]) -> None:
    source, _ = work
    runner = CliRunner()
    dist = tmp_path / "cli-dist"
    args = ["--source-dir", str(source), "--dist-dir", str(dist)]
    built = runner.invoke(main, ["build", *args])
    assert built.exit_code == 0, built.output
    assert "terragon-daemon.pyz" in built.output
    ok = runner.invoke(main, ["check", *args])
    assert ok.exit_code == 0 and ok.output.startswith("OK: ")
    assert len(ok.output.strip().splitlines()) == 1
    (source / "spool.py").write_text((source / "spool.py").read_text() + "\n")
    drift = runner.invoke(main, ["check", *args])
    assert drift.exit_code == 1
    assert "DRIFT: source file terragon_daemon/spool.py changed without rebuild" in drift.output


@pytest.mark.parametrize("command", [[], ["build"], ["check"]])
def test_cli_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
