"""`terragon-bundle`: build the daemon zipapp, or check that the committed one is current."""

from __future__ import annotations

import os
from pathlib import Path

import click

from terragon_daemon_bundle.builder import DEFAULT_DIST_DIR, DEFAULT_SOURCE_DIR, PYZ_NAME, build
from terragon_daemon_bundle.check import check
from terragon_daemon_bundle.manifest import sha256_hex

_dir = click.Path(file_okay=False, path_type=Path)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it (no machine paths in logs)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Build and verify the terragon-daemon zipapp (packages/daemon_bundle/dist)."""


@main.command("build")
@click.option(
    "--source-dir",
    type=_dir,
    default=DEFAULT_SOURCE_DIR,
    show_default=False,
    help="terragon_daemon package directory (default: this checkout's).",
)
@click.option(
    "--dist-dir",
    type=_dir,
    default=DEFAULT_DIST_DIR,
    show_default=False,
    help="Where terragon-daemon.pyz and manifest.json go (default: the package's dist/).",
)
def build_command(source_dir: Path, dist_dir: Path) -> None:
    """Write dist/terragon-daemon.pyz and dist/manifest.json, byte-for-byte reproducibly."""
    bundle = build(source_dir, dist_dir)
    click.echo(
        f"built {_shown(dist_dir / PYZ_NAME)} ({len(bundle.pyz)} bytes, "
        f"sha256 {sha256_hex(bundle.pyz)}, {len(bundle.manifest['sources'])} source files)"
    )


@main.command("check")
@click.option(
    "--source-dir",
    type=_dir,
    default=DEFAULT_SOURCE_DIR,
    show_default=False,
    help="terragon_daemon package directory (default: this checkout's).",
)
@click.option(
    "--dist-dir",
    type=_dir,
    default=DEFAULT_DIST_DIR,
    show_default=False,
    help="The committed dist to verify (default: the package's dist/).",
)
def check_command(source_dir: Path, dist_dir: Path) -> None:
    """Rebuild in a temp dir and compare with the committed dist; exit 1 on drift."""
    result = check(dist_dir, source_dir)
    if result.ok:
        click.echo(
            f"OK: {_shown(dist_dir / PYZ_NAME)} matches the sources (sha256 {result.pyz_sha256})"
        )
        return
    for problem in result.problems:
        click.echo(f"DRIFT: {problem}", err=True)
    click.echo(
        "run `uv run terragon-bundle build` and commit packages/daemon_bundle/dist/", err=True
    )
    raise SystemExit(1)
