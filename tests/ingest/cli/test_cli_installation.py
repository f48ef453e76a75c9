"""`terragon maintenance sweep` finds the installation by the one rule (CONTRACT §7): with only
a data directory, the running `up`'s database, Valkey and object store; and without Valkey it
says "not configured", not "down", naming where it looked.

Before: with no VALKEY_URL the sweep logged "Valkey is down" (it had not looked for one), and
with an up.json it needed --database-url."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import valkey.asyncio as valkey_asyncio

from terragon_core import quarantine_offload_pending_key
from tests.fixtures.processes import run_terragon

ORPHAN = "preview/daemon-quarantine/thread-1/2026-11-26/orphan.json"


def _env(**extra: str) -> dict[str, str]:
    """The child's environment names no installation unless told (run_terragon adds os.environ;
    these override it)."""
    return {"DATABASE_URL": "", "VALKEY_URL": "", "TERRAGON_DATA_DIR": "", **extra}


def _up_json(data_dir: Path, **fields: object) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "up.json").write_text(json.dumps({"pid": os.getpid(), **fields}))


async def test_sweep_uses_the_valkey_and_object_store_of_the_data_dirs_up(
    database_url: str, valkey_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "up-data"
    _up_json(data, databaseUrl=database_url, valkeyUrl=valkey_url)
    orphan = data / "objects" / ORPHAN
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"{}")
    client = valkey_asyncio.from_url(valkey_url)
    pending = quarantine_offload_pending_key(os.environ["TERRAGON_ENV"])
    await client.zadd(pending, {ORPHAN: time.time() - 3600})
    await client.aclose()

    code, stdout, stderr = await asyncio.to_thread(
        run_terragon, ["maintenance", "sweep", "--data-dir", str(data)], _env()
    )
    assert code == 0, stderr
    assert json.loads(stdout)["orphanObjectsRemoved"] == 1
    assert not orphan.exists()
    assert "not configured" not in stderr


async def test_sweep_without_valkey_says_not_configured_and_where_it_looked(
    database_url: str, tmp_path: Path
) -> None:
    code, stdout, stderr = await asyncio.to_thread(
        run_terragon,
        ["maintenance", "sweep", "--data-dir", str(tmp_path / "none")],
        _env(DATABASE_URL=database_url),
    )
    assert code == 0, stderr
    assert json.loads(stdout)["swept"] is True
    assert (
        "Valkey is not configured: no VALKEY_URL, and no running terragon up (no "
        f"{tmp_path / 'none' / 'up.json'}): the orphan-object scan is skipped"
    ) in stderr
    assert "down" not in stderr and "did not answer" not in stderr

    hand_written = tmp_path / "hand"
    _up_json(hand_written, databaseUrl=database_url)
    code, _, stderr = await asyncio.to_thread(
        run_terragon, ["maintenance", "sweep", "--data-dir", str(hand_written)], _env()
    )
    assert code == 0, stderr
    assert f"no VALKEY_URL, and {hand_written / 'up.json'} names none" in stderr


async def test_sweep_with_an_unreachable_valkey_says_so(database_url: str, tmp_path: Path) -> None:
    code, stdout, stderr = await asyncio.to_thread(
        run_terragon,
        ["--log-format", "json", "maintenance", "sweep", "--data-dir", str(tmp_path)],
        _env(DATABASE_URL=database_url, VALKEY_URL="redis://127.0.0.1:1/0"),
    )
    assert code == 0, stderr
    assert json.loads(stdout)["orphanObjectsRemoved"] == 0
    [skipped] = [
        json.loads(line) for line in stderr.splitlines() if '"orphan_scan_skipped"' in line
    ]
    assert skipped["reason"] == "Valkey is configured but did not answer"
    assert "not configured" not in stderr
