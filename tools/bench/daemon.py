"""The daemon (the committed bundle, `dist/terragon-daemon.pyz`, one-shot mode) relaying a fast
fake agent to a no-I/O sink (the daemon is the subject, not the service):

- relay: messages/s from a fast agent (a transcript recorded from `tools/fake_agent.py`,
  replayed by `cat`) until the daemon has delivered everything and exited, vs that agent alone
  writing the same lines to a pipe (the ceiling: the daemon cannot relay faster than its agent);
- CPU: the daemon process's own CPU (children excluded) at a steady 100 messages/s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tools.bench.context import Context
from tools.bench.ingest import _noio_server
from tools.bench.report import BenchResult, judge
from tools.bench.stack import REPO_ROOT, proc_cpu_seconds

BUNDLE = REPO_ROOT / "packages" / "daemon_bundle" / "dist" / "terragon-daemon.pyz"
FAKE_AGENT = REPO_ROOT / "tools" / "fake_agent.py"
RELAY_TARGET = ">= 20 k messages/s"
CPU_TARGET = "<= 5 % of one core at 100 msg/s"


def _repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@terragon.invalid"]
    subprocess.run([*git, "init", "-q", str(path)], check=True)
    (path / "README.md").write_text("bench\n")
    subprocess.run([*git, "-C", str(path), "add", "README.md"], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-qm", "init"], check=True)
    return path


def _agent(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_AGENT), "--commits", "0", "--no-git", *args]


def _start(url: str, repo: Path, name: str, agent: list[str]) -> dict[str, object]:
    return {
        "type": "start",
        "runId": f"run-{name}",
        "threadId": f"thread-{name}",
        "threadChatId": "chat-1",
        "token": "bench-daemon-token",
        "payloadVersion": 2,
        "ingestUrl": url,
        "featureFlags": {"sandboxPreview": True, "daemonRunIdStrict": False, "rolloutPhase": None},
        "agentCommand": agent,
        "repoDir": str(repo),
    }


def _own_cpu(pid: int) -> float:
    """utime + stime of `pid` alone (its agent child is excluded)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _daemon(ctx: Context, name: str, start: dict[str, object]) -> subprocess.Popen[bytes]:
    path = ctx.workdir / f"start-{name}.json"
    path.write_text(json.dumps(start))
    log = (ctx.workdir / f"daemon-{name}.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            str(BUNDLE),
            "--spool-dir",
            str(ctx.workdir / f"spool-{name}"),
            "--socket",
            str(ctx.workdir / f"d-{name}.sock"),
            "--log-level",
            "warning",
            "--start-json",
            str(path),
        ],
        stdout=log,
        stderr=log,
        cwd=ctx.workdir,
    )


def bench_daemon(ctx: Context) -> list[BenchResult]:
    if not BUNDLE.exists():
        reason = f"{BUNDLE.relative_to(REPO_ROOT)} not built yet"
        return [
            BenchResult.skip("daemon relay", "messages/s", reason, RELAY_TARGET),
            BenchResult.skip("daemon CPU at 100 msg/s", "% core", reason, CPU_TARGET),
        ]
    repo = _repo(ctx.workdir / "daemon-repo")
    count = 20_000 if ctx.options.quick else 100_000
    # The fast agent: the fake agent's transcript recorded once, replayed by `cat` (bulk writes),
    # so the daemon, not a Python generator at ~20 k lines/s, is what the relay measures.
    transcript = ctx.workdir / "transcript.ndjson"
    ctx.status(f"daemon: recording the fake agent ({count:,} lines)")
    t0 = time.perf_counter()
    with transcript.open("wb") as out:
        subprocess.run(_agent("--messages", str(count)), stdout=out, cwd=repo, check=True)
    fake_rate = count / (time.perf_counter() - t0)
    lines = sum(1 for _ in transcript.open("rb"))
    ctx.status("daemon: the fast agent alone")
    t0 = time.perf_counter()
    subprocess.run(["cat", str(transcript)], stdout=subprocess.PIPE, check=True)
    agent_rate = lines / (time.perf_counter() - t0)
    sink = _noio_server(ctx)
    try:
        ctx.status(f"daemon: relaying {lines:,} messages")
        t0 = time.perf_counter()
        proc = _daemon(ctx, "relay", _start(sink.url, repo, "relay", ["cat", str(transcript)]))
        code = proc.wait(timeout=600)
        relay_s = time.perf_counter() - t0
        relay_rate = lines / relay_s
        # Delivered, not just read: every sealed batch acknowledged by the sink, none dead-lettered.
        state = json.loads(
            (ctx.workdir / "spool-relay" / "runs" / "run-relay" / "state.json").read_text()
        )
        delivered = (
            bool(state.get("complete"))
            and state.get("deadLettered") == 0
            and state.get("delivered") == state.get("lastSealedSeq")
        )
        steady_s = 6.0 if ctx.options.quick else 20.0
        ctx.status(f"daemon: steady 100 msg/s for {steady_s:.0f} s")
        agent = _agent("--messages", str(int(100 * (steady_s + 2))), "--rate", "100")
        proc2 = _daemon(ctx, "steady", _start(sink.url, repo, "steady", agent))
        time.sleep(1.0)  # pacing: skip start-up (imports, spool recovery)
        c0, w0 = _own_cpu(proc2.pid), time.perf_counter()
        time.sleep(steady_s)
        c1, w1 = _own_cpu(proc2.pid), time.perf_counter()
        sink_cpu = proc_cpu_seconds(sink.pid)
        proc2.wait(timeout=120)
        cpu = (c1 - c0) / (w1 - w0) * 100
    finally:
        sink.stop()
    ratio = relay_rate / agent_rate if agent_rate else None
    return [
        BenchResult(
            name="daemon relay",
            metric="messages/s",
            value=relay_rate,
            ceiling_name="agent alone",
            ceiling=agent_rate,
            ratio=ratio,
            target=RELAY_TARGET,
            met=relay_rate >= 20_000 and code == 0 and delivered,
            details={
                "messages": lines,
                "seconds": round(relay_s, 2),
                "exitCode": code,
                "fakeAgentLinesPerSecond": round(fake_rate),
                "batchesDelivered": state.get("delivered"),
                "deadLettered": state.get("deadLettered"),
                "note": f"{lines:,} messages in {relay_s:.2f} s (exit {code}), start-up "
                f"included, {state.get('delivered')} batches delivered, "
                f"{state.get('deadLettered')} dead-lettered; the fast agent (`cat` of a recorded transcript) alone writes "
                f"{agent_rate:,.0f} lines/s; tools/fake_agent.py alone {fake_rate:,.0f} lines/s",
            },
        ),
        BenchResult(
            name="daemon CPU at 100 msg/s",
            metric="% of a core",
            value=cpu,
            ceiling_name=None,
            target=CPU_TARGET,
            met=judge(cpu, "<=", 5.0),
            details={"sinkCpuSeconds": round(sink_cpu, 2), "windowSeconds": steady_s},
        ),
    ]
