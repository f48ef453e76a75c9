"""`db.conninfo`: how every connection of the service reads `DATABASE_URL`, one host or a primary
and its standbys (libpq's multi-host form). What happens at a failover: test_failover.py."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from terragon_ingest.db import conninfo
from tests.conftest import _with_database

MULTI = "postgresql://app:pw@db1:5432,db2:5433/terragon?target_session_attrs=read-write"


def test_a_multi_host_url_keeps_every_host_and_port() -> None:
    params = conninfo_to_dict(conninfo(MULTI, connect_timeout=5))
    assert (params["host"], params["port"]) == ("db1,db2", "5432,5433")
    assert (params["user"], params["password"], params["dbname"]) == ("app", "pw", "terragon")
    assert params["target_session_attrs"] == "read-write"
    # one connection tries every host within about the pool's wait: 5 s over two hosts
    assert params["connect_timeout"] == "3"


def test_defaults_fill_only_what_the_url_leaves_unset() -> None:
    params = conninfo_to_dict(conninfo("postgresql://app@db1/terragon", connect_timeout=5))
    assert params["target_session_attrs"] == "read-write"  # the service always writes
    assert params["connect_timeout"] == "5"
    assert params["keepalives_idle"] == "5" and params["tcp_user_timeout"] == "10000"
    given = "postgresql://app@db1,db2/t?connect_timeout=20&target_session_attrs=any&keepalives=0"
    params = conninfo_to_dict(conninfo(given, connect_timeout=5))
    assert (params["connect_timeout"], params["target_session_attrs"]) == ("20", "any")
    assert params["keepalives"] == "0"


def test_libpq_minimum_and_other_spellings() -> None:
    params = conninfo_to_dict(conninfo(MULTI, connect_timeout=1))
    assert params["connect_timeout"] == "2"  # libpq's (and psycopg's) minimum
    # key=value conninfo, and Unix socket directories
    params = conninfo_to_dict(conninfo("host=/run/a,/run/b dbname=t", connect_timeout=5))
    assert (params["host"], params["dbname"]) == ("/run/a,/run/b", "t")


def test_the_test_databases_keep_a_multi_host_url() -> None:
    params = conninfo_to_dict(_with_database(MULTI, "t_1"))
    assert (params["host"], params["port"], params["dbname"]) == ("db1,db2", "5432,5433", "t_1")
    assert params["target_session_attrs"] == "read-write"
