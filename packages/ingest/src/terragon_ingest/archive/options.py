"""The archive's command-line options, shared by `terragon archive|retention` and `terragon
dashboard`: which archive a command reads (`--archive-dir`, `--archive-url`)."""

from __future__ import annotations

from pathlib import Path

import click

from terragon_core.env import env_var
from terragon_ingest.settings import ArchiveSettings, Settings

archive_dir_option = click.option(
    "--archive-dir",
    default=env_var(ArchiveSettings, "DIR").read,
    type=click.Path(file_okay=False, path_type=Path),
    help="The Parquet archive. Default: <data-dir>/archive.",
)
archive_url_option = click.option(
    "--archive-url",
    default=env_var(ArchiveSettings, "URL").read,
    help="The archive as a URL: s3://bucket/prefix (endpoint: OBJECT_STORE_S3_ENDPOINT, "
    "credentials: AWS_*), file:///dir or a path. Wins over --archive-dir.",
)


def with_archive(settings: Settings, archive_dir: Path | None, archive_url: str | None) -> Settings:
    """The installation's settings with the archive the command line names (default
    `<data-dir>/archive`)."""
    import dataclasses

    root = (archive_dir or settings.server.DATA_DIR / "archive").resolve()
    return dataclasses.replace(
        settings, archive=dataclasses.replace(settings.archive, DIR=root, URL=archive_url)
    )
