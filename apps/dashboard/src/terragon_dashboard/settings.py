"""The dashboard's settings, from its environment (set by `terragon dashboard` / `terragon up`)
or from script arguments after `--` (`streamlit run app.py -- --archive-dir=DIR`, or
`-- --archive-url=s3://bucket/prefix`).

Every field is declared with `terragon_core.env.setting`, so `docs/configuration.md`'s table lists
it (`uv run python -m tools.settings_table --write`). This module is the dashboard's only reader of
the environment."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from terragon_core.bucket_settings import BucketSettings
from terragon_core.dashboard_access import DashboardAccessSettings
from terragon_core.env import EnvVar, setting


def _arg(name: str) -> str | None:
    prefix = f"--{name}="
    for arg in sys.argv[1:]:
        if arg.startswith(prefix):
            return arg.removeprefix(prefix)
    return None


@dataclass(frozen=True, slots=True)
class DashboardSettings(DashboardAccessSettings):
    ARCHIVE_DIR: Path = setting(
        "TERRAGON_ARCHIVE_DIR",
        "path",
        Path(".data/archive"),
        "The Parquet archive as a local directory (or `--archive-dir=`).",
        shown_default="`<data-dir>/archive`",
        read=lambda env: Path(env.get("TERRAGON_ARCHIVE_DIR") or ".data/archive").resolve(),
    )
    ARCHIVE_URL: str | None = setting(
        "TERRAGON_ARCHIVE_URL",
        "url",
        None,
        "The archive in a bucket, `s3://bucket/prefix` (or `--archive-url=`); wins over the "
        "directory.",
    )
    DATABASE_URL: str | None = setting(
        "DATABASE_URL",
        "url",
        None,
        "PostgreSQL for the dashboard's live last hour (read-only); unset → archive only.",
    )
    REFRESH_SECONDS: float = setting(
        "TERRAGON_DASHBOARD_REFRESH_SECONDS",
        "float",
        30.0,
        "The dashboard page refreshes itself this often; `0`: never.",
    )
    PASSWORD: str | None = setting(
        "TERRAGON_DASHBOARD_PASSWORD",
        "str",
        None,
        "The dashboard's sign-in password (at least 12 characters, compared in constant time).",
        secret=True,
        read=lambda env: env.get("TERRAGON_DASHBOARD_PASSWORD") or None,
    )
    DATA_DIR: Path | None = setting(
        "TERRAGON_DATA_DIR",
        "path",
        None,
        "The installation's data directory (or `--data-dir=`; set by `terragon up` / "
        "`terragon dashboard`), carried as `--data-dir` by the commands the page prints.",
        read=lambda env: Path(p).resolve() if (p := env.get("TERRAGON_DATA_DIR")) else None,
    )
    bucket: BucketSettings = field(default_factory=BucketSettings)

    def __post_init__(self) -> None:
        if self.ARCHIVE_URL and not self.ARCHIVE_URL.startswith("s3://"):
            # file:///dir or a path: a directory after all
            directory = Path(self.ARCHIVE_URL.removeprefix("file://")).resolve()
            object.__setattr__(self, "ARCHIVE_DIR", directory)
            object.__setattr__(self, "ARCHIVE_URL", None)

    @classmethod
    def from_env(cls) -> DashboardSettings:
        """The environment's settings, with the script arguments after `--` in their place."""
        settings = cls()
        overrides: dict[str, object] = {}
        if archive := _arg("archive-dir"):
            overrides["ARCHIVE_DIR"] = Path(archive).resolve()
        if url := _arg("archive-url"):
            overrides["ARCHIVE_URL"] = url
        if data_dir := _arg("data-dir"):
            overrides["DATA_DIR"] = Path(data_dir).resolve()
        return dataclasses.replace(settings, **overrides) if overrides else settings

    @property
    def archive(self) -> Path | str:
        """Where the archive is read from: the bucket's URL, else the directory."""
        return self.ARCHIVE_URL or self.ARCHIVE_DIR


LIBRARY_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "AWS_ACCESS_KEY_ID",
        "str",
        None,
        "The bucket's credentials, read by pyarrow's S3 client itself.",
        secret=True,
    ),
    EnvVar("AWS_SECRET_ACCESS_KEY", "str", None, "See `AWS_ACCESS_KEY_ID`.", secret=True),
)
"""Variables the dashboard's libraries read themselves: documented here so the table lists them."""
