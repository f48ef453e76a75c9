"""The dashboard's settings, from its environment (set by `terragon dashboard` / `terragon up`)
or from script arguments after `--` (`streamlit run app.py -- --archive-dir=DIR`, or
`-- --archive-url=s3://bucket/prefix`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def _arg(name: str) -> str | None:
    prefix = f"--{name}="
    for arg in sys.argv[1:]:
        if arg.startswith(prefix):
            return arg.removeprefix(prefix)
    return None


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    ARCHIVE_DIR: Path
    """`TERRAGON_ARCHIVE_DIR` (or `--archive-dir=`): the Parquet archive; default `.data/archive`."""
    ARCHIVE_URL: str | None
    """`TERRAGON_ARCHIVE_URL` (or `--archive-url=`): the archive in a bucket, `s3://bucket/prefix`
    (endpoint `OBJECT_STORE_S3_ENDPOINT`, credentials `AWS_*`); wins over the directory."""
    DATABASE_URL: str | None
    """`DATABASE_URL`: Postgres for the live last hour (read-only); unset → archive only."""
    REFRESH_SECONDS: float
    """`TERRAGON_DASHBOARD_REFRESH_SECONDS`: the page refreshes itself this often; 0 = never."""
    AUTH: str | None = None
    """`TERRAGON_DASHBOARD_AUTH`: `password` asks every browser session to sign in with
    `TERRAGON_DASHBOARD_PASSWORD`; unset = no sign-in (then the page shows payload prefixes only
    when it is served on a loopback address)."""
    PASSWORD: str | None = None
    """`TERRAGON_DASHBOARD_PASSWORD`: the sign-in password (at least 12 characters)."""
    HOSTS: tuple[str, ...] = ()
    """`TERRAGON_DASHBOARD_HOSTS`: the host names the dashboard answers to, comma-separated
    (`dash.example.com,localhost`; no port: any port matches); unset = the bind address,
    `localhost` and `127.0.0.1`. Any other `Host`, or a websocket from any other `Origin`, gets
    403 (a DNS-rebinding page reads nothing)."""
    DATA_DIR: Path | None = None
    """`TERRAGON_DATA_DIR` (or `--data-dir=`; set by `terragon up` / `terragon dashboard`): the
    installation's data directory, carried as `--data-dir` by the commands the page prints;
    unset = those commands carry the archive's and database's own flags instead."""

    @classmethod
    def from_env(cls) -> DashboardSettings:
        archive = _arg("archive-dir") or os.environ.get("TERRAGON_ARCHIVE_DIR") or ".data/archive"
        url = _arg("archive-url") or os.environ.get("TERRAGON_ARCHIVE_URL") or None
        if url and not url.startswith("s3://"):  # file:///dir or a path: a directory after all
            archive, url = url.removeprefix("file://"), None
        data_dir = _arg("data-dir") or os.environ.get("TERRAGON_DATA_DIR") or None
        return cls(
            ARCHIVE_DIR=Path(archive).resolve(),
            ARCHIVE_URL=url,
            DATABASE_URL=os.environ.get("DATABASE_URL") or None,
            REFRESH_SECONDS=float(os.environ.get("TERRAGON_DASHBOARD_REFRESH_SECONDS") or 30),
            AUTH=(os.environ.get("TERRAGON_DASHBOARD_AUTH") or "").strip().lower() or None,
            PASSWORD=os.environ.get("TERRAGON_DASHBOARD_PASSWORD") or None,
            HOSTS=tuple(
                name.strip()
                for name in os.environ.get("TERRAGON_DASHBOARD_HOSTS", "").split(",")
                if name.strip()
            ),
            DATA_DIR=Path(data_dir).resolve() if data_dir else None,
        )

    @property
    def archive(self) -> Path | str:
        """Where the archive is read from: the bucket's URL, else the directory."""
        return self.ARCHIVE_URL or self.ARCHIVE_DIR
