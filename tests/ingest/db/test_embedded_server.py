"""The embedded PostgreSQL (`terragon up` without DATABASE_URL) runs with the settings an ingest
host's write load needs: checkpoints far apart (issue 28: the default 1 GB of WAL started one a
minute at full load, and the full-page writes after each were the worst round's p99)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg

from terragon_ingest.embedded import EmbeddedPostgres


def test_the_embedded_server_checkpoints_every_15_minutes_or_8_gb_of_wal() -> None:
    with tempfile.TemporaryDirectory(prefix="terragon-embedded-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start()
        try:
            with psycopg.connect(url) as conn:
                settings = dict(
                    conn.execute(
                        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                        (["max_wal_size", "checkpoint_timeout", "max_connections", "fsync"],),
                    ).fetchall()
                )
        finally:
            server.stop()
    assert settings == {
        "max_wal_size": "8GB",
        "checkpoint_timeout": "15min",
        "max_connections": "200",
        "fsync": "on",
    }
