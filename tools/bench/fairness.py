"""Fairness: one token floods, another run's 1-message envelopes keep their latency (issue 23).

Two phases on the same service, one after the other: the victim alone (one connection, one
1-message envelope after another), then the same victim while one daemon token floods from
`FLOOD_CONNECTIONS` connections at once with large envelopes (many messages, ~1 MiB) and, one in
`HUGE_EVERY`, an envelope over the run's per-minute message budget. The victim's loaded median and
p99 are compared with its unloaded ones from the same run: target ≤ 3x median, ≤ 5x p99. The
flood's answers are counted by status (most are 429 `rate_limited` once its budget is spent: that
is the budget at work, and why the victim keeps its latency).
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from collections import Counter
from typing import Any

import httpx

from terragon_core import DAEMON_TOKEN_HEADER, RUN_MAX_MESSAGES_PER_MINUTE
from tools.bench.context import Context
from tools.bench.ingest import _envelope
from tools.bench.report import BenchResult, judge
from tools.bench.stack import CONTRACT_BUDGETS, RunHandle, Server, create_run, internal_client

DAEMON_EVENT = "/api/daemon-event"
FLOOD_CONNECTIONS = 8
FLOOD_MESSAGES = 2000
FLOOD_BYTES = 1024 * 1024
HUGE_EVERY = 10
HUGE_MESSAGES = RUN_MAX_MESSAGES_PER_MINUTE + 1000
"""Over the default messages per minute: can never fit, quarantined `invalid_envelope`."""
MEDIAN_TARGET = 3.0
P99_TARGET = 5.0


def percentile(samples: list[float], q: float) -> float:
    """The `q`-quantile (0..1) by nearest rank: the smallest sample with at least q of them at or
    below it (p99 of 100 samples is the 99th smallest)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def fairness_results(
    unloaded_ms: list[float], loaded_ms: list[float], details: dict[str, Any] | None = None
) -> list[BenchResult]:
    """The two rows: the victim's loaded median and p99 against its unloaded ones."""
    rows = []
    for label, q, target in (("median", 0.5, MEDIAN_TARGET), ("p99", 0.99, P99_TARGET)):
        base, loaded = percentile(unloaded_ms, q), percentile(loaded_ms, q)
        ratio = loaded / base if base > 0 else None
        rows.append(
            BenchResult(
                name=f"fairness: another run's {label} under a flood",
                metric=f"ms ({label}, 1-message envelope)",
                value=loaded,
                ceiling_name="the same, unloaded",
                ceiling=base,
                ratio=ratio,
                target=f"≤ {target:g}x unloaded",
                met=judge(ratio, "<=", target),
                details={
                    "unloadedSamples": len(unloaded_ms),
                    "loadedSamples": len(loaded_ms),
                    **(details or {}),
                },
            )
        )
    return rows


VICTIM_RUN_ENVELOPES = 1000
"""A fresh victim run after this many envelopes: the victim itself stays far under its budget."""


def _victim(ctx: Context, url: str, seconds: float) -> tuple[list[float], Counter[int]]:
    """One connection, one 1-message envelope after another; each one's latency in ms."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    run, headers, seq = None, {}, 0
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            if run is None or seq >= VICTIM_RUN_ENVELOPES:
                with internal_client(url) as internal:
                    run, _ = create_run(internal, f"fair-victim-{ctx.phase()}")
                headers = {DAEMON_TOKEN_HEADER: run.token, "Content-Type": "application/json"}
                seq = 0
            seq += 1
            body = _envelope(run, f"victim-{seq}", seq, messages=1)
            started = time.perf_counter()
            response = client.post(DAEMON_EVENT, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1
    return latencies, statuses


def _flood(url: str, run: RunHandle, stop: Any, worker: int, out: Any) -> None:
    """One flooding connection, in the flood process: the same two prebuilt bodies (a large one
    and, one in `HUGE_EVERY`, one over the budget), each with a fresh eventId / seq spliced in,
    so building them costs the load generator next to nothing."""
    headers = {DAEMON_TOKEN_HEADER: run.token, "Content-Type": "application/json"}
    marker, seq_marker = b"EVENTIDXXXXXXXXX", b"987654321987654"
    large = _envelope(run, marker.decode(), seq_marker.decode(), FLOOD_MESSAGES, FLOOD_BYTES)
    huge = _envelope(run, marker.decode(), seq_marker.decode(), HUGE_MESSAGES, FLOOD_BYTES)
    counts: Counter[str] = Counter()
    sent = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            sent += 1
            seq = b"%15d" % (worker * 1_000_000 + sent)  # JSON: leading spaces, not zeros
            template = huge if sent % HUGE_EVERY == 0 else large
            body = template.replace(marker, b"f%015d" % (worker * 1_000_000 + sent))
            body = body.replace(seq_marker, seq)
            try:
                response = client.post(DAEMON_EVENT, content=body, headers=headers)
            except httpx.HTTPError as exc:
                counts[f"error:{type(exc).__name__}"] += 1
                continue
            status = response.json().get("status", "?") if response.content else "?"
            counts[f"{response.status_code}:{status}"] += 1
    out.put(dict(counts))


def _flood_process(url: str, run: RunHandle, stop: Any, out: Any) -> None:
    """The flood's own process: its connections never share the victim's interpreter (a client
    thread of the victim's process would wait for the GIL and time the flood's Python)."""
    threads = [
        threading.Thread(target=_flood, args=(url, run, stop, i, out), daemon=True)
        for i in range(1, FLOOD_CONNECTIONS + 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def bench_fairness(ctx: Context) -> list[BenchResult]:
    # A service of its own on the contract's budgets (the shared one has them lifted for the
    # path benchmarks); `--service-env` still overrides them.
    service = ctx.stack.spawn_service(
        env={**CONTRACT_BUDGETS, **ctx.stack.extra_env}, name="fairness"
    )
    try:
        return _fairness(ctx, service)
    finally:
        service.stop()


def _fairness(ctx: Context, service: Server) -> list[BenchResult]:
    seconds = ctx.options.seconds
    with internal_client(service.url) as client:
        flooder, _ = create_run(client, f"fair-flood-{ctx.phase()}")
    ctx.status("fairness: the victim alone")
    _victim(ctx, service.url, min(2.0, seconds))  # warm-up, not counted
    unloaded, unloaded_statuses = _victim(ctx, service.url, seconds)
    ctx.status(f"fairness: the victim while one token floods from {FLOOD_CONNECTIONS} connections")
    spawn = multiprocessing.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    flooder_process = spawn.Process(target=_flood_process, args=(service.url, flooder, stop, out))
    flooder_process.start()
    flood: Counter[str] = Counter()
    try:
        time.sleep(min(2.0, seconds / 3))  # let the flood reach its steady state
        loaded, loaded_statuses = _victim(ctx, service.url, seconds)
    finally:
        stop.set()
        for _ in range(FLOOD_CONNECTIONS):
            flood.update(out.get(timeout=180))
        flooder_process.join(60)
    details = {
        "flood": dict(flood),
        "victimStatuses": {
            "unloaded": dict(unloaded_statuses),
            "loaded": dict(loaded_statuses),
        },
        "floodShape": f"{FLOOD_CONNECTIONS} connections, ~{FLOOD_BYTES // 1024} KiB envelopes of "
        f"{FLOOD_MESSAGES} messages, 1 in {HUGE_EVERY} of {HUGE_MESSAGES}",
    }
    rows = fairness_results(unloaded, loaded, details)
    median, p99 = rows
    median.details["note"] = (
        f"victim p50 {median.value:.1f} vs {median.ceiling:.1f} ms, p99 {p99.value:.1f} vs "
        f"{p99.ceiling:.1f} ms (flooded vs alone); flood answers {dict(flood)}"
    )
    return rows
