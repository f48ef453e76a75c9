"""`--profile`: py-spy samples the service during the apply load; the summary (top frames by
inclusive and self share of the samples) goes into the results so a miss comes with its profile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(max(1, int(seconds))),
            "-r",
            "100",
            "--subprocesses",  # `serve --workers N`: sample every worker
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _frame(raw: str) -> str:
    name, _, where = raw.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]}" + (")" if where else "")


def summarize(path: Path, top: int = 25) -> dict[str, object]:
    if not path.exists():
        return {"error": "no profile written"}
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        self_time[frames[-1]] += n
    share = lambda c: [f"{n / total:.0%} {k}" for k, n in c.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive": share(inclusive), "self": share(self_time)}
