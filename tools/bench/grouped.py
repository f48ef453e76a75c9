"""The grouped ceiling (issue 16): pgbench replaying the group-commit statement itself,
`terragon_ingest_envelopes(<batch>)`, at the batch sizes the service formed during the apply load.

The batch text is built by the service's own code, not by hand: each envelope is decoded by core's
`decode_envelope`, turned into the decision's parameters by `service.decision_input` and into the
statement's argument by `repository.batch_json`, exactly as `group_commit.py` sends it. The
per-request values then become pgbench variables.

A batch holds envelopes of different runs, as the service's do: under wrk each connection is its
own run with one request in flight, so a service batch holds at most one envelope per run. Each
pgbench client owns `K` runs (`K` = the largest replayed batch size; `bench_client` columns
`bx_run<i>`, `bx_thr<i>`, `bx_tokh<i>`: `client_columns`), and envelope `i` of a batch is run `i`'s.
A batch of one envelope of one run (`:bx_run` = run 0) is the decision's fast path; a batch of
many envelopes of one run, which the service never sends, would take its slow ordered path.

Every envelope of a transaction carries the client's `seq` counter, advanced by one per
transaction (`\\set bx_seq :bx_seq + 1`, shared with the one-envelope scripts), so each of the
client's runs sees strictly increasing `seq`s (with gaps where a smaller batch skipped it, which
the decision allows) and a fresh event id: every replayed envelope is applied, never a duplicate
or stale.
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

_EVENT = "BXGEVT"
_SEQ = 987_600_000
RUN_COLUMNS = ("bx_run", "bx_thr", "bx_tokh")
"""Per run of a client: `bx_run<i>`, `bx_thr<i>`, `bx_tokh<i>` (run id, thread id, token sha256)."""


def placeholder_run(i: int) -> RunHandle:
    """The stand-in for run `i` of a batch, replaced by `:bx_run<i>`, ... in the statement."""
    return RunHandle(f"bxthread{i:02d}", "chat-1", f"bxrun{i:02d}", f"bxtoken{i:02d}")


def client_columns(k: int) -> list[str]:
    """`bench_client`'s run columns for `k` runs per client, after the one-envelope scripts'."""
    return [f"{name}{i}" for i in range(k) for name in RUN_COLUMNS]


def client_rows(
    runs: list[RunHandle], clients: int, k: int, single: Callable[[RunHandle], tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """One row per client: `single(run 0)` (the one-envelope scripts' columns), then its `k` runs'
    `client_columns`. Client `c` owns `runs[c*k:(c+1)*k]`."""
    if len(runs) < clients * k:
        raise ValueError(f"{clients} clients x {k} runs need {clients * k} runs, got {len(runs)}")
    rows = []
    for c in range(clients):
        own = runs[c * k : (c + 1) * k]
        values = [v for r in own for v in (r.run_id, r.thread_id, r.token_sha256)]
        rows.append((*single(own[0]), *values))
    return rows


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
    """One `ingest_envelopes` statement of `size` envelopes, envelope `i` of the client's run `i`,
    as SQL text with pgbench variables: `:bx_run<i>`, `:bx_thr<i>`, `:bx_tokh<i>`, `:bx_evt` (the
    event ids `g:bx_evt-<i>`) and `:bx_seq` (every envelope's seq: one per run per transaction)."""
    batch = []
    for i in range(size):
        count, nbytes = shapes[i % len(shapes)]
        run = placeholder_run(i)
        body = envelope(run, f"{_EVENT}{i:02d}", _SEQ + i, count, nbytes)
        delivery = Delivery(
            decode_envelope(body), body, f"bxtrace{i:02d}", token_hash=hash_token(run.token)
        )
        batch.append(decision_input(delivery))
    text = batch_json(batch)
    for i in range(size):
        run = placeholder_run(i)
        text = text.replace(f'"seq":{_SEQ + i}', '"seq": :bx_seq')
        text = text.replace(f"{_EVENT}{i:02d}", f"g:bx_evt-{i}")
        text = text.replace(hash_token(run.token).hex(), f":bx_tokh{i}")
        text = text.replace(f'"{run.run_id}"', f'":bx_run{i}"')
        text = text.replace(f'"{run.thread_id}"', f'":bx_thr{i}"')
    literal = "'" + text.replace("'", "''") + "'"
    statement = Q["ingest_envelopes"].replace("%(batch)s", literal)
    # The service's first try: no subtransactions (it isolates a batch only after a failure).
    return statement.replace("%(isolated)s", "false").strip().rstrip(";") + ";"


def grouped_script(statement: str, client_vars: list[str]) -> str:
    """pgbench_script for one batch: `bx_seq` advances by one per transaction, as in the
    one-envelope scripts (each envelope is another run's)."""
    return pgbench_script([statement], client_vars)


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
