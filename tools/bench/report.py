"""Benchmark results: one row per measurement with its in-run ceiling, the ratio and the
issue's target; written as a Markdown table and a JSON file under `bench-results/`."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class BenchResult:
    name: str
    metric: str
    value: float | None = None
    ceiling_name: str | None = None
    ceiling: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    """Why this benchmark did not run (its subject has not landed, a tool is missing, ...)."""

    @classmethod
    def skip(cls, name: str, metric: str, reason: str, target: str = "") -> BenchResult:
        return cls(name=name, metric=metric, target=target, skipped=reason)


def judge(ratio: float | None, op: str, bound: float) -> bool | None:
    if ratio is None:
        return None
    return ratio >= bound if op == ">=" else ratio <= bound


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def markdown(results: list[BenchResult], *, started: datetime, command: str) -> str:
    info = machine()
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC · {info['cores']} cores · Python {info['python']} · "
        f"`{command}`",
        "",
        "| benchmark | measured | ceiling (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.name} | skipped: {r.skipped} | | | {r.target} | |")
            continue
        ceiling = f"{_num(r.ceiling)} ({r.ceiling_name})" if r.ceiling_name else "-"
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(
            f"| {r.name} | {_num(r.value)} {r.metric} | {ceiling} | {_num(r.ratio)} | "
            f"{r.target} | {met} |"
        )
    notes = [(r.name, r.details["note"]) for r in results if r.details.get("note")]
    if notes:
        lines += ["", *[f"- {name}: {note}" for name, note in notes]]
    for r in results:  # a bench's own table and verdict lines (the soak's windows)
        if r.details.get("lines"):
            lines += ["", f"{r.name}:", "", "```", *r.details["lines"], "```"]
    return "\n".join(lines) + "\n"


def write(results: list[BenchResult], out_dir: Path, *, started: datetime, command: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    md = markdown(results, started=started, command=command)
    payload = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": command,
        "machine": machine(),
        "results": [asdict(r) for r in results],
    }
    (out_dir / f"bench-{stamp}.md").write_text(md)
    (out_dir / f"bench-{stamp}.json").write_text(json.dumps(payload, indent=2, default=str))
    (out_dir / "latest.md").write_text(md)
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2, default=str))
    return out_dir / f"bench-{stamp}.md"
