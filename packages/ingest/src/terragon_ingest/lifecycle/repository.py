"""SQL of the scheduler: claiming a periodic job's time slot (`job_slot`), once across replicas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from terragon_ingest.db import load_queries

if TYPE_CHECKING:
    from datetime import datetime

    from terragon_ingest.db import AsyncConn

Q = load_queries("terragon_ingest.lifecycle")


async def claim_job_slot(conn: AsyncConn, job: str, slot_start: datetime, claimed_by: str) -> bool:
    """True when this replica won the slot (and must run the job); False when another did."""
    cur = await conn.execute(
        Q["claim_job_slot"], {"job": job, "slot_start": slot_start, "claimed_by": claimed_by}
    )
    return await cur.fetchone() is not None


async def finish_job_slot(conn: AsyncConn, job: str, slot_start: datetime, *, failed: bool) -> None:
    await conn.execute(
        Q["finish_job_slot"], {"job": job, "slot_start": slot_start, "failed": failed}
    )
