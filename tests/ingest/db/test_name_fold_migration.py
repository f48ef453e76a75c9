"""The 2026-12-07 migration on a database that already holds rows: permission rows that differ
only in case fold into one (the primary keys would refuse two), the rest are folded, and the
deliveries recorded before body digests keep deduplicating by their delivery id."""

from __future__ import annotations

import hashlib
from typing import Any, cast

import psycopg
import pytest

from terragon_ingest.access.repository import Q
from terragon_ingest.db import migrate as migrate_module
from terragon_ingest.db.migrate import load_migrations, migrate
from terragon_ingest.db.pool import CONNECTION_KWARGS

FOLD = "2026-12-07-1020_webhook_digest_name_fold.sql"


def _migrate_to_before_fold(conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner itself, shown only the migrations before the fold (and no function files)."""
    before = [m for m in load_migrations() if m.name < FOLD]
    assert 0 < len(before) < len(load_migrations())
    with monkeypatch.context() as patch:
        patch.setattr(migrate_module, "load_migrations", lambda: before)
        patch.setattr(migrate_module, "load_functions", list)
        assert migrate(conn) == [m.name for m in before]


def _seed(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """INSERT INTO github_repo (repo_full_name, visibility, updated_at) VALUES
           ('Acme/Web', 'public', now() - interval '2 hours'),
           ('acme/web', 'private', now() - interval '1 hour'),
           ('ACME/WEB', 'public', now() - interval '3 hours'),
           ('Other/Repo', 'public', now())"""
    )
    conn.execute(
        """INSERT INTO github_repo_collaborator (repo_full_name, github_login) VALUES
           ('Acme/Web', 'Bob-GH'), ('acme/web', 'bob-gh'), ('ACME/WEB', 'BOB-GH'),
           ('Acme/Web', 'carol'), ('x/y', 'Alice')"""
    )
    conn.execute(
        """INSERT INTO github_team_member (team_id, github_login) VALUES
           ('1', 'Bob-GH'), ('1', 'bob-gh'), ('2', 'BOB-gh')"""
    )
    conn.execute(
        """INSERT INTO github_team_repo (team_id, repo_full_name) VALUES
           ('1', 'Acme/Web'), ('1', 'acme/web'), ('2', 'ACME/web')"""
    )
    conn.execute(
        """INSERT INTO github_account (user_id, github_login) VALUES
           ('user-2', 'Bob-GH'), ('user-3', 'CAROL')"""
    )
    conn.execute(
        """INSERT INTO github_webhook_delivery (delivery_id, event, action)
           VALUES ('d-old', 'member', 'added')"""
    )


def test_existing_rows_fold_and_merge(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(empty_url, **CONNECTION_KWARGS) as conn:  # type: ignore[arg-type]
        _migrate_to_before_fold(conn, monkeypatch)
        _seed(conn)
        assert migrate(conn)[0] == FOLD

        def rows(sql: str) -> list[tuple]:
            return conn.execute(cast("Any", sql)).fetchall()

        assert rows("SELECT repo_full_name, visibility FROM github_repo ORDER BY 1") == [
            ("acme/web", "private"),  # the newest of the three
            ("other/repo", "public"),
        ]
        assert rows(
            "SELECT repo_full_name, github_login FROM github_repo_collaborator ORDER BY 1, 2"
        ) == [
            ("acme/web", "bob-gh"),
            ("acme/web", "carol"),
            ("x/y", "alice"),
        ]
        assert rows("SELECT team_id, github_login FROM github_team_member ORDER BY 1") == [
            ("1", "bob-gh"),
            ("2", "bob-gh"),
        ]
        assert rows("SELECT team_id, repo_full_name FROM github_team_repo ORDER BY 1") == [
            ("1", "acme/web"),
            ("2", "acme/web"),
        ]
        # Account logins are kept as given and compared folded.
        assert rows("SELECT user_id, github_login FROM github_account ORDER BY 1") == [
            ("user-2", "Bob-GH"),
            ("user-3", "CAROL"),
        ]
        for user, repo in [("user-2", "Acme/WEB"), ("user-3", "acme/web")]:
            allowed = conn.execute(
                Q["fetch_repo_access"], {"user_id": user, "repo_full_name": repo}
            )
            assert allowed.fetchone() == (True,), (user, repo)

        stand_in = hashlib.sha256(
            b"terragon: delivery recorded before body digests: d-old"
        ).digest()
        assert rows("SELECT body_sha256, delivery_id FROM github_webhook_delivery") == [
            (stand_in, "d-old")
        ]
        again = conn.execute(
            Q["insert_delivery"],
            {
                "body_sha256": hashlib.sha256(b"{}").digest(),
                "delivery_id": "d-old",
                "event": "member",
                "action": "added",
            },
        )
        assert again.fetchone() is None  # the old delivery id still deduplicates

        # Every later write is held folded.
        try:
            conn.execute(
                "INSERT INTO github_repo_collaborator (repo_full_name, github_login) "
                "VALUES ('New/Repo', 'x')"
            )
        except psycopg.errors.CheckViolation:
            pass
        else:
            raise AssertionError("an unfolded permission row was accepted")
