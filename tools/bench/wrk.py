"""Drive HTTP load with Debian's `wrk` and a Lua script; report throughput, latency and the
generator's own CPU (so a reader can tell the generator was not the bottleneck)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bench.stack import RunHandle, proc_cpu_seconds

SCRIPT = Path(__file__).with_name("envelopes.lua")


class WrkMissing(RuntimeError):
    """`wrk` is not installed (`apt-get install wrk`; .ci/setup.d/bench-tools.sh does it)."""


@dataclass(slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    generator_cpu: float
    """wrk's CPU seconds per wall second (1.0 = one core busy)."""
    server_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per wall second of the watched processes, by name."""
    wall: float = 0.0
    """Wall seconds over which `server_cpu` was measured (wrk's run, start-up included)."""

    def cpu_seconds(self, name: str) -> float | None:
        """CPU seconds the watched processes `name` used during the load, if watched."""
        if name not in self.server_cpu or not self.wall:
            return None
        return self.server_cpu[name] * self.wall

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50Ms": round(self.p50_ms, 2),
            "p90Ms": round(self.p90_ms, 2),
            "p99Ms": round(self.p99_ms, 2),
            "maxMs": round(self.max_ms, 2),
            "errors": self.errors,
            "generatorCpu": round(self.generator_cpu, 3),
            "serverCpu": {k: round(v, 3) for k, v in self.server_cpu.items()},
        }


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing("wrk not found: apt-get install wrk (or bash .ci/setup.d/bench-tools.sh)")
    return found


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for our ids


def lua_config(
    mode: str,
    path: str,
    runs: list[RunHandle],
    phase: int,
    auth: str = "",
    delay_ms: int = 0,
    big: bool = False,
) -> str:
    entries = ",\n".join(
        "  {{run={}, tok={}, thr={}, chat={}}}".format(
            *(_lua_string(v) for v in (r.run_id, r.token, r.thread_id, r.thread_chat_id))
        )
        for r in runs
    )
    return (
        f"config = {{mode={_lua_string(mode)}, path={_lua_string(path)}, phase={phase}, "
        f"auth={_lua_string(auth)}, delay_ms={delay_ms}, big={str(big).lower()}, "
        f"runs={{\n{entries}\n}}}}\n"
    )


Watched = list[int] | Callable[[], list[int]]
"""Processes whose CPU a load phase reports: fixed pids, or a listing read before and again after
(PostgreSQL's: a backend started during the phase counts, one that exited is in the postmaster's
reaped-children time)."""


def _cpu(watched: Watched) -> float:
    pids = watched() if callable(watched) else watched
    return sum(proc_cpu_seconds(p) for p in pids)


def run_wrk(
    url: str,
    *,
    mode: str,
    path: str,
    runs: list[RunHandle],
    connections: int,
    seconds: float,
    phase: int,
    auth: str = "",
    watch: dict[str, Watched] | None = None,
    timeout_s: int = 10,
    delay_ms: int = 0,
    big: bool = False,
) -> WrkResult:
    """One wrk thread per connection (each owns a run, so its `seq` is strictly increasing)."""
    binary = wrk_path()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua_config(mode, path, runs, phase, auth, delay_ms, big))
        handle.write(SCRIPT.read_text())
        script = handle.name
    watch = watch or {}
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = {name: _cpu(pids) for name, pids in watch.items()}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [
                binary,
                "-t",
                str(connections),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                f"{timeout_s}s",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(script).unlink(missing_ok=True)
    wall = time.monotonic() - started
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = {name: (_cpu(pids) - before[name]) / wall for name, pids in watch.items()}
    generator = (
        after_children.ru_utime
        - before_children.ru_utime
        + after_children.ru_stime
        - before_children.ru_stime
    ) / wall
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    errors = {
        k.removeprefix("errors_"): int(v)
        for k, v in data.items()
        if k.startswith("errors_") and int(v)
    }
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=errors,
        generator_cpu=generator,
        server_cpu=server_cpu,
        wall=wall,
    )
