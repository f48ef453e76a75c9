"""Soak (`--soak SECONDS --rate 0.7`): warm up, measure the apply maximum, then hold `rate` x that
load in windows (wrk paces each connection with `delay()`, steered window by window to the target
rate), recording each window's rate, p99 and the service's RSS. Targets: last-window p99 <= 1.5 x the first window's; RSS growth < 10 %."""

from __future__ import annotations

from tools.bench.context import Context
from tools.bench.ingest import DAEMON_EVENT, MISSING_ROUTE
from tools.bench.report import BenchResult
from tools.bench.stack import create_runs, proc_rss_bytes, process_tree, route_exists
from tools.bench.wrk import run_wrk

TARGET = "p99 drift <= 1.5 x; RSS growth < 10 %"


def bench_soak(ctx: Context) -> list[BenchResult]:
    stack = ctx.stack
    service = stack.service
    assert service is not None
    total = ctx.options.soak_seconds or (30.0 if ctx.options.quick else 600.0)
    if not route_exists(service.url, "post", DAEMON_EVENT):
        return [BenchResult.skip("soak", "p99 drift", MISSING_ROUTE, TARGET)]
    n = ctx.options.connections

    def load(seconds: float, delay_ms: int) -> tuple[float, float]:
        with stack.client() as client:
            runs = create_runs(client, f"soak-{ctx.phase()}", n)
        result = run_wrk(
            service.url + DAEMON_EVENT,
            mode="apply",
            path=DAEMON_EVENT,
            runs=runs,
            connections=n,
            seconds=seconds,
            phase=ctx.phase(),
            delay_ms=delay_ms,
        )
        return result.rps, result.p99_ms

    ctx.status("soak: warming up, then measuring the maximum")
    load(5.0, 0)  # a cold service and empty tables under-state the maximum
    max_rps, _ = load(min(10.0, ctx.options.seconds), 0)
    target_rps = max(1.0, ctx.options.soak_rate * max_rps)
    # wrk has no rate flag: each connection waits `delay` after each answer, so the rate is
    # n / (latency + delay). Latency falls as load falls, so the delay is steered: calibrated in
    # short windows first, then corrected after every soak window (the database keeps growing).
    delay_ms = max(1, int((n / target_rps - n / max_rps) * 1000))

    def steer(delay: int, rps: float) -> int:
        return max(1, int(delay + (n / target_rps - n / max(rps, 1.0)) * 1000))

    for attempt in range(4):
        ctx.status(f"soak: calibrating the pace ({attempt + 1}/4, delay {delay_ms} ms)")
        rps, _ = load(5.0, delay_ms)
        if abs(rps - target_rps) <= 0.05 * target_rps:
            break
        delay_ms = steer(delay_ms, rps)
    window = 60.0 if total >= 180 else max(5.0, total / 5)
    windows: list[dict[str, float]] = []
    elapsed = 0.0
    while elapsed + 1 <= total:
        seconds = min(window, total - elapsed)
        ctx.status(f"soak: window {len(windows) + 1} ({elapsed:.0f}/{total:.0f} s)")
        rps, p99 = load(seconds, delay_ms)
        windows.append(
            {
                "rps": rps,
                "p99Ms": p99,
                "delayMs": delay_ms,
                "rssBytes": sum(proc_rss_bytes(p) for p in process_tree(service.pid)),
            }
        )
        elapsed += seconds
        delay_ms = steer(delay_ms, rps)
    held = sum(w["rps"] for w in windows) / len(windows)
    first, last = windows[0], windows[-1]
    drift = last["p99Ms"] / first["p99Ms"] if first["p99Ms"] else None
    growth = (last["rssBytes"] - first["rssBytes"]) / first["rssBytes"] if first["rssBytes"] else 0
    return [
        BenchResult(
            name=f"soak {total:.0f} s at {ctx.options.soak_rate:.0%} of max",
            metric="x p99 drift",
            value=drift,
            ceiling_name="first window p99",
            ceiling=first["p99Ms"],
            ratio=drift,
            target=TARGET,
            met=drift is not None and drift <= 1.5 and growth < 0.10,
            details={
                "maxRps": round(max_rps, 1),
                "targetRps": round(target_rps, 1),
                "windows": windows,
                "rssGrowth": round(growth, 4),
                "heldRps": round(held, 1),
                "note": f"max {max_rps:,.0f} env/s, target {target_rps:,.0f}, held {held:,.0f} "
                f"env/s on average in "
                f"{len(windows)} windows; p99 {first['p99Ms']:.1f} → {last['p99Ms']:.1f} ms; "
                f"RSS {first['rssBytes'] / 2**20:.0f} → {last['rssBytes'] / 2**20:.0f} MiB "
                f"({growth:+.1%})",
            },
        )
    ]
