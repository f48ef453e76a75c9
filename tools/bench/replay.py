"""The pgbench ceiling: capture the exact SQL the service issues for one request (statement
logging on the embedded server: `log_statement = all`, parameters included), turn it into a
pgbench script (per-request values become pgbench variables), and replay it at the same
concurrency. pgserver's PostgreSQL ships no pg_stat_statements, so the log is the source.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[(\d+)\] ([A-Z]+):  (.*)$")
_PARAM = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')", re.S)
_PLACEHOLDER = re.compile(r"\$(\d+)")
_EXECUTE = re.compile(r"^(?:statement|execute [^:]+): (.*)$", re.S)
_UUID_LITERAL = re.compile(r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'")


@dataclass(slots=True)
class Captured:
    statements: list[str]
    """Each statement with its parameters inlined as SQL literals, in execution order."""
    pids: set[int] = field(default_factory=set)
    order: list[int] = field(default_factory=list)
    """The backend pid of each statement."""


def pgbench_path() -> str:
    """pgserver's pgbench (same major version as the embedded server), else Debian's."""
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    if not Path(found).exists():
        raise RuntimeError("pgbench not found: apt-get install postgresql-client")
    return found


def _records(text: str) -> list[tuple[int, str, str]]:
    records: list[tuple[int, str, str]] = []
    for line in text.splitlines():
        match = _RECORD.match(line)
        if match:
            records.append((int(match.group(1)), match.group(2), match.group(3)))
        elif records:
            pid, level, message = records[-1]
            records[-1] = (pid, level, message + "\n" + line.removeprefix("\t"))
    return records


def inline_parameters(sql: str, params: dict[int, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: params.get(int(m.group(1)), m.group(0)), sql)


def parse_log(text: str, exclude_pids: set[int]) -> Captured:
    """Statements (with parameters inlined) from a PostgreSQL log with `log_statement = all`."""
    captured = Captured(statements=[])
    pending: tuple[int, str] | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            captured.statements.append(pending[1])
            captured.pids.add(pending[0])
            captured.order.append(pending[0])
            pending = None

    for pid, level, message in _records(text):
        if pid in exclude_pids:
            continue
        if level == "LOG":
            match = _EXECUTE.match(message)
            if match:
                flush()
                pending = (pid, match.group(1).strip())
        elif (
            level == "DETAIL"
            and pending is not None
            and pending[0] == pid
            and message.startswith("parameters: ")
        ):
            params = {int(n): v for n, v in _PARAM.findall(message)}
            pending = (pid, inline_parameters(pending[1], params))
    flush()
    return captured


def capture(
    admin_url: str, log_file: Path, send: Callable[[], Any], marker: str, timeout: float = 10.0
) -> Captured:
    """Turn on statement logging, run `send()` (one request), wait for `marker` in the log."""
    wait_idle(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        own = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert own is not None
        offset = log_file.stat().st_size if log_file.exists() else 0
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("ALTER SYSTEM SET log_parameter_max_length = -1")
        conn.execute("SELECT pg_reload_conf()")
        # The reload is asynchronous: wait until new backends see it.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(admin_url, autocommit=True) as probe:
                row = probe.execute("SHOW log_statement").fetchone()
            if row and row[0] == "all":
                break
            time.sleep(0.02)
        try:
            send()
            text = ""
            while time.monotonic() < deadline:
                with log_file.open("rb") as handle:
                    handle.seek(offset)
                    text = handle.read().decode("utf-8", errors="replace")
                if marker in text:
                    break
                time.sleep(0.05)
        finally:
            conn.execute("ALTER SYSTEM RESET log_statement")
            conn.execute("ALTER SYSTEM RESET log_parameter_max_length")
            conn.execute("SELECT pg_reload_conf()")
    if marker not in text:
        raise RuntimeError(f"marker {marker!r} never reached the PostgreSQL log {log_file}")
    # Keep only the connections that carried the marked request (a request holds one pooled
    # connection); ignore our own control connection.
    captured = parse_log(text, exclude_pids={int(own[0])})
    marked = {
        pid for pid, sql in zip(captured.order, captured.statements, strict=True) if marker in sql
    }
    kept = [
        sql for pid, sql in zip(captured.order, captured.statements, strict=True) if pid in marked
    ]
    return Captured(statements=kept, pids=marked, order=[p for p in captured.order if p in marked])


def wait_idle(admin_url: str, timeout: float = 30.0) -> None:
    """Wait until no client backend but ours is running a query (the service drained)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline and quiet < 5:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
            quiet = quiet + 1 if row and row[0] == 0 else 0
            time.sleep(0.05)


def templatize(statements: list[str], replacements: dict[str, str]) -> list[str]:
    """Replace per-request values with pgbench variables; fresh uuids for the rest.

    A variable right after a ':' (JSON `"seq":5`) gets a space, because pgbench skips `::`.
    """
    out: list[str] = []
    for sql in statements:
        if sql.strip().upper().startswith("SHOW "):
            continue
        for value in sorted(replacements, key=len, reverse=True):
            var = replacements[value]
            if value.isdigit():  # JSON `"seq":5` must not become `"seq"::bx_seq`
                sql = sql.replace(":" + value, ": " + var)
            sql = sql.replace(value, var)
        # A fresh uuid per transaction that stays an untyped literal (function overloads
        # resolve as they did for the service): digits are hex digits.
        sql = _UUID_LITERAL.sub("'0000:bx_cid-0000-4000-8000-:bx_u'", sql)
        out.append(sql.rstrip().rstrip(";") + ";")
    return out


def pgbench_script(statements: list[str], client_vars: list[str]) -> str:
    """A pgbench transaction script. Per-client values (run, token, ...) come from the table
    `bench_client` once per client (`\\gset`); `seq` grows per client; `evt` is random."""
    lines = []
    if client_vars:
        cols = ", ".join(client_vars)
        lines += [
            "\\if :bx_loaded = 0",
            f"SELECT {cols} FROM bench_client WHERE client = :client_id \\gset",
            "\\set bx_loaded 1",
            "\\endif",
        ]
    lines += [
        "\\set bx_seq :bx_seq + 1",
        "\\set bx_evt random(1, 9000000000000000)",
        "\\set bx_cid 1000 + :client_id",
        "\\set bx_u random(100000000000, 999999999999)",
    ]
    lines += statements
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    output: str
    p99_ms: float | None = None
    """From pgbench's per-transaction log: the ceiling's own tail at the same concurrency."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tps": round(self.tps, 1),
            "latencyAvgMs": round(self.latency_ms, 2),
            "p99Ms": round(self.p99_ms, 2) if self.p99_ms is not None else None,
            "transactions": self.transactions,
            "failed": self.failed,
        }


def run_pgbench(
    db_url: str,
    script: str | list[str],
    *,
    clients: int,
    seconds: float,
    workdir: Path,
    threads: int = 2,
    weights: list[int] | None = None,
    seq_start: int = 1000,
) -> PgbenchResult:
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    # Several scripts (one per captured request shape) run with equal weight unless `weights`
    # says otherwise: pgbench draws one per transaction, so the replay has the load's mix.
    scripts = [script] if isinstance(script, str) else script
    files: list[str] = []
    for i, text in enumerate(scripts):
        path = workdir / f"replay-{i}.sql"
        path.write_text(text)
        files += ["-f", f"{path}@{weights[i] if weights else 1}"]
    log_prefix = workdir / "pgbench-latency"
    for old in workdir.glob(f"{log_prefix.name}.*"):
        old.unlink()
    argv = [
        pgbench_path(),
        "-n",
        "-M",
        "simple",
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(max(1, round(seconds))),
        "-D",
        "bx_loaded=0",
        "-D",
        f"bx_seq={seq_start}",
        "-l",
        f"--log-prefix={log_prefix}",
        *files,
        "-h",
        str(info.get("host", "")),
        "-U",
        str(info.get("user", "postgres")),
        str(info.get("dbname", "postgres")),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    tps = re.search(r"tps = ([\d.]+)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if proc.returncode != 0 or not tps:
        raise RuntimeError(
            f"pgbench failed ({proc.returncode}):\n{out[-1500:]}\nscript:\n{scripts[0][:1500]}"
        )
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else 0.0,
        transactions=int(done.group(1)) if done else 0,
        failed=int(failed.group(1)) if failed else 0,
        output=out,
        p99_ms=_p99_from_logs(sorted(workdir.glob(f"{log_prefix.name}.*"))),
    )


def _p99_from_logs(paths: list[Path]) -> float | None:
    """p99 latency (ms) of pgbench's `-l` logs: one line per transaction, the third field its
    latency in µs."""
    latencies = sorted(
        int(fields[2])
        for path in paths
        for line in path.read_text().splitlines()
        if len(fields := line.split()) >= 3 and fields[2].isdigit()
    )
    if not latencies:
        return None
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000


def settle_database(db_url: str) -> None:
    """`VACUUM (ANALYZE)` the whole database before a measured phase, as pgbench does before each
    run (unless `-n`): autovacuum's insert-triggered pass over run_message otherwise lands in
    whichever phase crosses its threshold (8-14 s of reads and writes at ~25 MB/s, by
    `log_autovacuum_min_duration=0`), and one phase's p99 and CPU would be compared with
    another's that it spared."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def load_client_table(db_url: str, rows: list[tuple[Any, ...]], columns: list[str]) -> None:
    """`bench_client(client, <columns>)`: what each pgbench client replays as its own run."""
    cols = ", ".join(f"{c} text" for c in columns)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_client")
        conn.execute(f"CREATE TABLE bench_client (client int PRIMARY KEY, {cols})")  # type: ignore[arg-type]
        marks = ", ".join(["%s"] * (len(columns) + 1))
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO bench_client VALUES ({marks})",  # type: ignore[arg-type]
                [(i, *row) for i, row in enumerate(rows)],
            )
