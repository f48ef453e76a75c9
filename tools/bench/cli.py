"""`python -m tools.bench`: benchmarks with their ceilings measured in the same run.

Starts embedded PostgreSQL + Valkey and the service (`terragon serve`, uvicorn) on 127.0.0.1,
runs the selected benchmarks with a progress bar, prints a table and writes
`bench-results/latest.{md,json}` (plus a timestamped copy).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tools.bench.context import Context, Options
from tools.bench.report import BenchResult, markdown, write
from tools.bench.stack import REPO_ROOT, Stack

Bench = Callable[[Context], list[BenchResult]]


def _benches() -> dict[str, tuple[Bench, bool]]:
    """name → (function, needs the HTTP service)."""
    from tools.bench import (
        access,
        archive,
        archive_read,
        daemon,
        dashboard,
        fairness,
        growth,
        ingest,
        preview,
        soak,
    )

    return {
        "ingest": (ingest.bench_daemon_event, True),
        "scaffold": (ingest.bench_threads_scaffold, True),
        "access": (access.bench_access, False),
        "preview": (preview.bench_preview_proxy, True),
        "rollup": (archive.bench_rollup, False),
        "purge": (archive.bench_purge, False),
        "daemon": (daemon.bench_daemon, False),
        "dashboard": (dashboard.bench_dashboard, False),
        "growth": (growth.bench_growth, True),
        "archive-read": (archive_read.bench_archive_read, False),
        "soak": (soak.bench_soak, False),  # starts its own replicas
        "fairness": (fairness.bench_fairness, True),
    }


DEFAULT = [
    "ingest",
    "scaffold",
    "access",
    "preview",
    "rollup",
    "purge",
    "daemon",
    "dashboard",
    "growth",
    "fairness",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark the ingest plane against ceilings measured in the same run "
        "(pgbench replay, no-I/O server, raw Valkey GET, plain Arrow copy, ...).",
        epilog="Examples: `python -m tools.bench --quick`; `python -m tools.bench --only ingest`; "
        "`python -m tools.bench --soak 600 --rate 0.7`; "
        "`python -m tools.bench --only soak --soak 1800 --replicas 2 --s3`.",
    )
    parser.add_argument("--quick", action="store_true", help="short mode: ~3 s per load phase")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*DEFAULT, "soak", "archive-read"],
        help="run only these benchmarks (repeatable; default: all but soak and archive-read, "
        "which measures the read path from S3 once, not a regression ceiling)",
    )
    parser.add_argument("--connections", type=int, default=32, help="HTTP/pgbench concurrency")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="`terragon serve --workers N` (and the no-I/O ceiling with as many); default: one "
        "per core, as production runs it",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=None,
        help="the service's TERRAGON_DB_POOL_MAX (default: the service's own default)",
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds per load phase (default 10, --quick 3)"
    )
    parser.add_argument(
        "--soak", type=float, default=0.0, metavar="SECONDS", help="also soak this long"
    )
    parser.add_argument(
        "--rate", type=float, default=0.7, help="soak load as a fraction of the measured maximum"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="soak: `terragon serve` replicas (more than one: behind a balancing proxy), each "
        "with its own data directory, periodic jobs on (TERRAGON_JOB_INTERVAL_SECONDS: 30, a "
        "quarter of a soak under 2 min; --service-env sets another)",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="soak: the archive and the offloaded payloads in a bucket on moto's S3 server "
        "(tools/s3_server.py), as replicas on several hosts share them",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench-results", help="results directory"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the service during the apply load"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch data directory")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service under test (repeatable), e.g. "
        "TERRAGON_GROUP_COMMIT_IN_FLIGHT=2 to compare tunings",
    )
    return parser


def run(args: argparse.Namespace, console: Console) -> list[BenchResult]:
    options = Options(
        quick=args.quick,
        connections=args.connections,
        seconds=args.seconds or (3.0 if args.quick else 10.0),
        soak_seconds=args.soak,
        soak_rate=args.rate,
        profile=args.profile,
        workers=args.workers,
        replicas=args.replicas,
        s3=args.s3,
    )
    selected = list(args.only or DEFAULT)
    if args.soak and "soak" not in selected:
        selected.append("soak")
    benches = _benches()
    root = Path(tempfile.mkdtemp(prefix="terragon-bench-"))
    stack = Stack(root / "stack")
    stack.workers = args.workers
    if args.pool:
        stack.pool_max = args.pool
    for item in args.service_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--service-env wants NAME=VALUE, got {item!r}")
        stack.extra_env[name] = value
    results: list[BenchResult] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    with progress:
        task = progress.add_task("starting", total=len(selected) + 1, status="")

        def status(text: str) -> None:
            progress.update(task, status=text)

        ctx = Context(options=options, workdir=root, stack=stack, status=status)
        try:
            status("embedded PostgreSQL + Valkey")
            stack.start_backends()
            if any(benches[name][1] for name in selected):
                status("service (terragon serve)")
                stack.start_service()
            progress.advance(task)
            for name in selected:
                progress.update(task, description=name)
                started = time.monotonic()
                try:
                    out = benches[name][0](ctx)
                except Exception as exc:  # one broken bench must not hide the others
                    out = [BenchResult.skip(name, "", f"failed: {type(exc).__name__}: {exc}")]
                for result in out:
                    result.details.setdefault("benchSeconds", round(time.monotonic() - started, 1))
                results += out
                progress.advance(task)
        finally:
            status("stopping")
            if args.keep:
                stack.stop()
                console.print(f"kept {root}")
            else:
                stack.remove()
                import shutil

                shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from terragon_ingest.log_config import configure_logging

    configure_logging("warning", json=False)
    console = Console(stderr=True)
    started = datetime.now(UTC)
    command = "uv run python -m tools.bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = run(args, console)
    path = write(results, args.out, started=started, command=command.strip())
    console.print(Markdown(markdown(results, started=started, command=command.strip())))
    console.print(f"written: {path} and {path.with_suffix('.json')}")
    return 0
