"""The grouped ceiling (issue 16): pgbench replaying the group-commit statement itself,
`terragon_ingest_envelopes(<batch>)`, at the batch sizes the service formed during the apply load.

The batch text is built by the service's own code, not by hand: each envelope is decoded by core's
`decode_envelope`, turned into the decision's parameters by `service.decision_input` and into the
statement's argument by `repository.batch_json`, exactly as `group_commit.py` sends it. The
per-request values then become pgbench variables: each pgbench client replays one run of its own
(`bench_client`), with a fresh event id per transaction and `seq`s that grow across batches, so
every replayed envelope is applied, never a duplicate.

Batch sizes come from the service's histogram (`preview_ingest_batch_envelopes`), whose buckets
are 1, 2, 4, 8, 16, 32: a bucket is replayed at its upper bound (a batch of 3 as a batch of 4),
which can only raise the ceiling (bigger batches amortise more), so the ratio is conservative.
Batches of one are sent by the service as the plain one-envelope statement, and replayed so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from terragon_core import decode_envelope
from terragon_ingest.daemon_events.repository import Q, batch_json
from terragon_ingest.daemon_events.service import Delivery, decision_input
from terragon_ingest.runs.tokens import hash_token
from tools.bench.replay import pgbench_script
from tools.bench.stack import RunHandle

if TYPE_CHECKING:
    from collections.abc import Callable

GROUPED_SEQ_BASE = 10_000_000
"""Grouped replays run on runs of their own, from here (above anything the load sent)."""

_RUN = RunHandle("bxthread", "chat-1", "bxrun", "bxtoken")
_EVENT = "BXGEVT"
_SEQ = 987_600_000


@dataclass(frozen=True, slots=True)
class GroupedScript:
    size: int
    """Envelopes per transaction."""
    weight: int
    text: str


def batch_sizes(by_bucket: dict[str, int]) -> dict[int, int]:
    """`{'<= 1': n1, '<= 2': n2, ...}` (batch_distribution) → {upper bound: statements}."""
    sizes: dict[int, int] = {}
    for label, count in by_bucket.items():
        bound = label.removeprefix("<= ").strip()
        if count <= 0 or bound == "inf":
            continue
        sizes[int(float(bound))] = count
    return sizes


def grouped_statement(
    size: int, envelope: Callable[[RunHandle, str, int, int, int], bytes], shapes: list[Any]
) -> str:
    """One `ingest_envelopes` statement of `size` envelopes of the placeholder run, as SQL text
    with pgbench variables: `:bx_run`, `:bx_thr`, `:bx_tokh`, `:bx_evt`, `:bx_s<i>`."""
    batch = []
    for i in range(size):
        count, nbytes = shapes[i % len(shapes)]
        body = envelope(_RUN, f"{_EVENT}{i:02d}", _SEQ + i, count, nbytes)
        delivery = Delivery(
            decode_envelope(body), body, f"bxtrace{i:02d}", token_hash=hash_token(_RUN.token)
        )
        batch.append(decision_input(delivery))
    text = batch_json(batch)
    for i in range(size):
        text = text.replace(f'"seq":{_SEQ + i}', f'"seq": :bx_s{i}')
        text = text.replace(f"{_EVENT}{i:02d}", f"g:bx_evt-{i}")
    text = text.replace(hash_token(_RUN.token).hex(), ":bx_tokh")
    text = text.replace(_RUN.run_id, ":bx_run").replace(_RUN.thread_id, ":bx_thr")
    literal = "'" + text.replace("'", "''") + "'"
    statement = Q["ingest_envelopes"].replace("%(batch)s", literal)
    # The service's first try: no subtransactions (it isolates a batch only after a failure).
    return statement.replace("%(isolated)s", "false").strip().rstrip(";") + ";"


def grouped_script(statement: str, size: int, client_vars: list[str]) -> str:
    """pgbench_script for one batch: `bx_seq` advances by the batch, each envelope its own seq."""
    script = pgbench_script([statement], client_vars)
    # seq_i = the last seq sent + 1 + i, then the last seq moves past the batch.
    seqs = "\n".join(f"\\set bx_s{i} :bx_seq + {i + 1}" for i in range(size))
    return script.replace("\\set bx_seq :bx_seq + 1", f"{seqs}\n\\set bx_seq :bx_seq + {size}")


def weights(sizes: dict[int, int], total: int = 1000) -> dict[int, int]:
    """pgbench takes integer weights: statements by size, scaled to about `total`."""
    count = sum(sizes.values())
    return {k: max(1, round(v * total / count)) for k, v in sizes.items() if v}


_SCRIPT = re.compile(
    r"SQL script (\d+):.*?(\d+) transactions \([\d.]+% of total, tps = ([\d.]+)\)", re.S
)


def replayed(pgbench_output: str, sizes_in_order: list[int]) -> tuple[int, float]:
    """(envelopes replayed, envelopes/s): Σ over scripts of transactions (and transactions/s) x
    envelopes per transaction, from pgbench's per-script report (printed for several scripts)."""
    envelopes, per_second = 0, 0.0
    for number, transactions, tps in _SCRIPT.findall(pgbench_output):
        size = sizes_in_order[int(number) - 1]
        envelopes += int(transactions) * size
        per_second += float(tps) * size
    return envelopes, per_second
