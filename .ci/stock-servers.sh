#!/usr/bin/env bash
# CI's second pass (issue 14): the PostgreSQL/Redis-facing tests once more against the stock
# servers this kind of machine runs (PostgreSQL 15 on 127.0.0.1:5432, trust auth, database `test`;
# Redis 7 on 127.0.0.1:6379) — what managed PostgreSQL and Redis-compatible services run in
# production — instead of the embedded PostgreSQL 16 / Valkey 8 of the first pass.
# Skipped, with the reason printed, when either server is absent. Override the URLs with
# TERRAGON_STOCK_DATABASE_URL / TERRAGON_STOCK_VALKEY_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL="${TERRAGON_STOCK_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
VK_URL="${TERRAGON_STOCK_VALKEY_URL:-redis://127.0.0.1:6379/0}"

# Why a Python probe, not pg_isready/redis-cli: the client tools may be missing where the servers
# run; psycopg and valkey-py are in the lock. Prints the reason and exits 1 when one is absent.
if ! reason=$(uv run python - "$PG_URL" "$VK_URL" <<'PY' 2>&1
import sys
import psycopg
import valkey
pg, vk = sys.argv[1], sys.argv[2]


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


try:
    with psycopg.connect(pg, connect_timeout=3) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        can = conn.execute(
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
except Exception as exc:
    sys.exit(f"no PostgreSQL at {pg} ({type(exc).__name__}: {one_line(exc)})")
if not can:
    sys.exit(f"{pg}: the role cannot CREATE DATABASE (the tests clone one per test)")
try:
    client = valkey.from_url(vk, socket_connect_timeout=3, socket_timeout=3)
    info = client.info("server")
    client.close()
except Exception as exc:
    sys.exit(f"no Redis/Valkey at {vk} ({type(exc).__name__}: {one_line(exc)})")
print(f"PostgreSQL {version}, Redis {info.get('redis_version')}")
PY
); then
  echo "SKIPPED the stock-server pass: ${reason##*$'\n'}"
  exit 0
fi
echo "stock servers: $reason"
export TERRAGON_TEST_DATABASE_URL="$PG_URL" TERRAGON_TEST_VALKEY_URL="$VK_URL"
# The subset: the tests that talk to PostgreSQL or Valkey through the service's own code
# (tests/ingest, one folder per domain; its few server-less tests take seconds), without the
# browser, and without test_cli_up.py and test_up_terminal.py (`terragon up` starts embedded
# servers of its own: nothing in them would reach the stock ones). tests/hostile
# and the rest exercise the sandbox, git and the daemon, already covered by the first pass.
time uv run pytest tests/ingest -m "not browser" -q \
  --ignore=tests/ingest/cli/test_cli_up.py \
  --ignore=tests/ingest/cli/test_up_terminal.py
