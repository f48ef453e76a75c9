"""The fault campaign: a fleet of real daemons (the committed bundle + tools/fake_agent.py)
posting through a cutting proxy to N service replicas (`terragon serve` processes on N ports,
each with a data directory of its own, sharing PostgreSQL, Valkey, the archive and the object
store) on embedded PostgreSQL + Valkey, all on 127.0.0.1. The proxy balances connections over the
replicas, so each daemon's requests (and its retries) land on all of them. Faults: one replica at
a time is SIGKILLed and restarted periodically (the others keep serving), PostgreSQL is restarted
once, Valkey is stopped for a while, connections are cut after commit. The periodic jobs run
(once per slot across replicas). At the end every message each fake agent emitted is compared
with `run_message` (0 lost, 0 duplicated), every run must be finished or failed, and the archive
must hold exactly the Postgres rows before its watermark (each once).

Every kind of data is under the faults too: misbehaving daemons (`mischief.py`: a superseded
run's real daemon, crafted zombie, oversized, stale-seq and v1 envelopes) post through the same
proxy, and an old day seeded before the replicas start is archived, sealed and purged by
retention while the faults run (`datacheck.py`); the fault window lasts until it is gone. The
final checks: quarantine rows and preview events reconciled with the archive (the purged day
counted: it lives in the archive only), the daily and minutely aggregates equal to the rows,
every acknowledged quarantine row present exactly once, every offloaded payload in the store.

The archive and the payload store default to local directories shared by the replicas; set
`TERRAGON_ARCHIVE_URL` / `TERRAGON_ARCHIVE_DIR` / `OBJECT_STORE_URL` (and their `*_ENDPOINT`,
`AWS_*` credentials) in the environment to put them on S3: every `TERRAGON_ARCHIVE_*`,
`OBJECT_STORE_*` and `AWS_*` variable is passed to the replicas and the archive commands.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql

from terragon_ingest.embedded import EmbeddedValkey
from terragon_ingest.lifecycle.jobs import periodic_jobs
from tools.bench.stack import (
    REPO_ROOT,
    Server,
    Stack,
    create_run,
    free_port,
    internal_client,
    route_exists,
)
from tools.chaos.datacheck import DataReport, RetentionDriver, check, seed_old_day
from tools.chaos.failover import (
    FailoverResult,
    JobSlots,
    check_job_slots,
    fail_over,
    faketime_env,
    finalized_early,
    start_pair,
)
from tools.chaos.mischief import ZOMBIE_REPO, Mischief
from tools.chaos.proxy import CuttingProxy
from tools.replicas import shared_env, start_replica
from tools.standby import PrimaryAndStandby

BUNDLE = REPO_ROOT / "packages" / "daemon_bundle" / "dist" / "terragon-daemon.pyz"
FAKE_AGENT = REPO_ROOT / "tools" / "fake_agent.py"


@dataclass
class Config:
    duration: float = 120.0
    daemons: int = 20
    messages: int = 40
    rate: float = 5.0
    """Agent lines per second per daemon."""
    kill_every: float = 60.0
    valkey_down: float = 30.0
    cut_probability: float = 0.05
    drain_timeout: float = 120.0
    seed: int = 7
    replicas: int = 1
    """Service processes behind the proxy; the kills take one at a time."""
    job_interval: float = 10.0
    """`TERRAGON_JOB_INTERVAL_SECONDS` of the replicas: many slots of every job under fault."""
    failover: bool = False
    """A primary + streaming standby instead of one PostgreSQL; the PostgreSQL fault becomes
    SIGKILL of the primary and promotion of the standby (`tools/chaos/failover.py`)."""
    synchronous_standby: bool = True
    promote_after: float = 2.0
    rebuild: bool = True
    """After the failover, rebuild the dead primary as the new standby."""
    skew: float = 0.0
    """Seconds the last replica's clock runs ahead (libfaketime); 0: no skew."""


@dataclass
class Report:
    runs: int = 0
    emitted: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unfinished: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    replicas: int = 1
    service_kills: int = 0
    """SIGKILLs of one replica (restarted on its port)."""
    others_serving: Counter[str] = field(default_factory=Counter)
    """Right after a kill, the other replicas' /healthz answers ("ok" or what failed)."""
    proxy_failovers: int = 0
    per_replica: list[int] = field(default_factory=list)
    """Connections each replica took through the proxy."""
    archive: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Per archived dataset: (Postgres rows before the watermark, archive rows there, distinct)."""
    postgres_restarts: int = 0
    valkey_outage_seconds: float = 0.0
    proxy_cuts: int = 0
    preview_probes: Counter[str] = field(default_factory=Counter)
    preview_allowed_while_down: int = 0
    preview_other_refusals: int = 0
    """Probes refused with anything but 503 `cache_unavailable`: the probe missed its path."""
    notes: list[str] = field(default_factory=list)
    daemon_exit_codes: Counter[int] = field(default_factory=Counter)
    failover: FailoverResult | None = None
    job_slots: JobSlots = field(default_factory=JobSlots)
    finalized_early: list[str] = field(default_factory=list)
    skew: float = 0.0
    """Seconds the skewed replica ran ahead (0: none, or faketime missing: see notes)."""

    @property
    def measured_loss(self) -> bool:
        """An asynchronous standby's failover: acknowledged envelopes may be gone and their runs
        left unfinished; the campaign measures that, it does not fail on it."""
        return self.failover is not None and not self.failover.synchronous

    data: DataReport = field(default_factory=DataReport)
    """Quarantine rows, preview events, aggregates, retention and payloads (`datacheck.py`)."""

    @property
    def ok(self) -> bool:
        return (
            self.data.ok
            and (self.lost == 0 or self.measured_loss)
            and self.duplicated == 0
            and (not self.unfinished or self.measured_loss)
            and self.job_slots.ok
            and not self.finalized_early
            and (self.failover is None or self.failover.first_apply is not None)
            and self.preview_allowed_while_down == 0
            and self.preview_other_refusals == 0
            and self.runs > 0
            and self.others_serving.get("ok", 0) == sum(self.others_serving.values())
            and self.archive_reconciled
        )

    @property
    def archive_reconciled(self) -> bool:
        return bool(self.archive) and all(
            pg == archived == distinct for pg, archived, distinct in self.archive.values()
        )

    def lines(self) -> list[str]:
        return [
            f"runs {self.runs}  emitted {self.emitted}  stored {self.stored}",
            f"lost {self.lost}  duplicated {self.duplicated}  unfinished {len(self.unfinished)}",
            f"run statuses {dict(self.statuses)}  daemon exits {dict(self.daemon_exit_codes)}",
            f"replicas {self.replicas}  connections per replica {self.per_replica}  "
            f"proxy failovers {self.proxy_failovers}  "
            f"others serving during a kill {dict(self.others_serving)}",
            f"faults: replica SIGKILLs {self.service_kills}, PostgreSQL restarts "
            f"{self.postgres_restarts}, Valkey down {self.valkey_outage_seconds:.0f} s, "
            f"connections cut after commit {self.proxy_cuts}"
            + (f", replica {self.replicas - 1}'s clock {self.skew:+.0f} s" if self.skew else ""),
            *([self.failover.line()] if self.failover else []),
            *(
                [f"acknowledged then lost in the asynchronous failover: {self.lost}"]
                if self.measured_loss
                else []
            ),
            self.job_slots.line(),
            f"runs finalized early by the backstop: {len(self.finalized_early)}",
            f"preview probes while Valkey down {dict(self.preview_probes)}  "
            f"allowed-while-down {self.preview_allowed_while_down}  "
            f"other refusals {self.preview_other_refusals}",
            "archive (postgres rows before the watermark + purged / archived / distinct): "
            + (
                ", ".join(f"{name} {pg}/{a}/{d}" for name, (pg, a, d) in self.archive.items())
                or "not checked"
            )
            + ("  reconciled" if self.archive_reconciled else "  NOT reconciled"),
            *self.data.lines(),
            *self.notes,
            "RESULT: " + ("PASS" if self.ok else "FAIL"),
        ]


def _git_repo(path: Path) -> None:
    git = ["git", "-c", "user.name=chaos", "-c", "user.email=chaos@terragon.invalid"]
    subprocess.run([*git, "init", "-q", str(path)], check=True)
    (path / "README.md").write_text("chaos\n")
    subprocess.run([*git, "-C", str(path), "add", "README.md"], check=True)
    subprocess.run([*git, "-C", str(path), "commit", "-qm", "init"], check=True)


@dataclass
class Daemon:
    run_id: str
    emitted: Path
    proc: subprocess.Popen[bytes]


def _spawn(cfg: Config, work: Path, index: int, message: dict[str, Any], url: str) -> Daemon:
    repo = work / f"repo-{index}"
    _git_repo(repo)
    emitted = work / f"emitted-{index}.jsonl"
    agent = (
        f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_AGENT))} --messages {cfg.messages} "
        f"--rate {cfg.rate} --commits 1 --seed {cfg.seed * 1000 + index} "
        f"| tee {shlex.quote(str(emitted))}"
    )
    start = {**message, "ingestUrl": url, "agentCommand": ["sh", "-c", agent], "repoDir": str(repo)}
    start_file = work / f"start-{index}.json"
    start_file.write_text(json.dumps(start))
    log = (work / f"daemon-{index}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BUNDLE),
            "--spool-dir",
            str(work / f"spool-{index}"),
            "--socket",
            str(work / f"d{index}.sock"),
            "--retry-base-delay",
            "0.2",
            "--retry-max-delay",
            "2",
            "--http-timeout",
            "5",
            "--flush-interval",
            "0.2",
            "--start-json",
            str(start_file),
        ],
        stdout=log,
        stderr=log,
        cwd=repo,
    )
    return Daemon(message["runId"], emitted, proc)


def _verify(db_url: str, daemons: list[Daemon], report: Report) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for daemon in daemons:
            emitted = []
            if daemon.emitted.exists():
                for line in daemon.emitted.read_text().splitlines():
                    try:
                        uuid = json.loads(line).get("uuid")
                    except ValueError:
                        continue
                    if uuid:
                        emitted.append(uuid)
            rows = conn.execute(
                "SELECT message_uuid FROM run_message WHERE run_id = %s AND message_uuid IS NOT NULL",
                (daemon.run_id,),
            ).fetchall()
            stored = Counter(str(r[0]) for r in rows)
            report.emitted += len(emitted)
            report.stored += sum(stored.values())
            report.lost += sum(1 for u in emitted if u not in stored)
            report.duplicated += sum(n - 1 for n in stored.values() if n > 1)
            status = conn.execute(
                "SELECT status FROM thread_run WHERE run_id = %s", (daemon.run_id,)
            ).fetchone()
            state = str(status[0]) if status else "missing"
            report.statuses[state] += 1
            if state not in ("finished", "failed"):
                report.unfinished.append(daemon.run_id)


def _on_origin(session: dict[str, Any], **headers: str) -> dict[str, str]:
    """Name the session's origin in Host (Python's resolver does not know *.localhost; the
    service is reached at its own address, as a browser's request to previewUrl would be)."""
    return {"host": urlsplit(session["previewUrl"]).netloc, **headers}


def _preview_probe(url: str, probe: dict[str, Any], report: Report) -> None:
    """The three session-origin paths while Valkey is down: exchange (a still unspent token),
    proxy and subscription-token (with a cookie taken while Valkey was up). Each must be a 503."""
    unused, session, cookie = probe["unused"], probe["session"], probe["cookie"]
    attempts: list[tuple[str, str, dict[str, Any], dict[str, str], Any]] = [
        ("POST", "/__terragon/exchange", unused, {}, {"token": unused["exchangeToken"]}),
        ("GET", "/", session, {"cookie": cookie}, None),
        ("POST", "/__terragon/subscription-token", session, {"cookie": cookie}, None),
    ]
    for method, path, on, headers, body in attempts:
        try:
            response = httpx.request(
                method, url + path, headers=_on_origin(on, **headers), json=body, timeout=5
            )
            code = response.status_code
        except httpx.HTTPError as exc:
            report.preview_probes[type(exc).__name__] += 1
            continue
        report.preview_probes[str(code)] += 1
        if code < 400:
            report.preview_allowed_while_down += 1
        elif code == 503 and response.json().get("code") == "DatabaseUnavailable":
            # The PostgreSQL restart overlapped the Valkey outage (short campaigns): still closed.
            report.notes.append(f"preview probe {method} {path}: 503 while PostgreSQL restarted")
        elif code != 503 or response.json().get("code") != "cache_unavailable":
            report.preview_other_refusals += 1
            report.notes.append(f"preview probe {method} {path}: {code} {response.text[:200]}")


def _settled(call: Any, within: float = 30.0) -> httpx.Response:
    """`call()` again while it answers 503 (a PostgreSQL restart just before may still be settling
    in the pool), up to `within` seconds; the last answer."""
    deadline = time.monotonic() + within
    while True:
        response: httpx.Response = call()
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)  # pacing between attempts


def _preview_sessions(
    client: httpx.Client, url: str, run: Any, report: Report
) -> dict[str, Any] | None:
    """Two sessions on the probe run while Valkey is up: one exchanged for a cookie, one not."""
    started = []
    body = {
        "threadId": run.thread_id,
        "threadChatId": run.thread_chat_id,
        "runId": run.run_id,
        "userId": "bench-user",
        "upstreamOrigin": "http://127.0.0.1:9",
    }
    for _ in range(2):
        response = _settled(lambda: client.post("/api/internal/preview/session/start", json=body))
        if response.status_code != 200:
            report.notes.append(f"preview session start: {response.status_code} {response.text}")
            return None
        started.append(response.json())
    session, unused = started
    exchanged = _settled(
        lambda: httpx.post(
            url + "/__terragon/exchange",
            json={"token": session["exchangeToken"]},
            headers=_on_origin(session),
            timeout=10,
        )
    )
    if exchanged.status_code != 200:
        report.notes.append(f"preview exchange while Valkey up: {exchanged.status_code}")
        return None
    cookie = exchanged.headers["set-cookie"].split(";", 1)[0]
    return {"session": session, "unused": unused, "cookie": cookie}


ARCHIVED = {
    # watermark name: (archive view, Postgres table, its time column)
    "quarantine": ("quarantine_rows", "daemon_event_quarantine", "created_at"),
    "preview_event": ("preview_events", "preview_event", "ts_server"),
}


def _terragon(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "terragon_ingest.cli", "--log-level", "warning", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"terragon {args[:2]} failed: {done.stderr[-2000:]}")
    return done.stdout


def _reconcile_archive(
    stack: Stack, env: dict[str, str], report: Report, purged: dict[str, int] | None = None
) -> None:
    """With the replicas stopped: one last rollup (as an operator runs it), then every dataset's
    Postgres rows before its watermark must be in the archive exactly once. `purged`: rows per
    table that retention purged (now in the archive only), counted on the Postgres side."""
    # Nothing is in flight any more (daemons drained, replicas stopped): no settle window needed.
    _terragon({**env, "TERRAGON_ARCHIVE_SETTLE_SECONDS": "0"}, "archive", "rollup")
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        for name, (view, table, column) in ARCHIVED.items():
            row = conn.execute(
                "SELECT watermark FROM archive_watermark WHERE dataset = %s", (name,)
            ).fetchone()
            if row is None:
                report.notes.append(f"archive: no watermark for {name}")
                continue
            watermark = row[0]
            count = sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(
                sql.Identifier(table), sql.Identifier(column)
            )
            in_pg = conn.execute(count, (watermark,)).fetchone()
            query = (
                f"SELECT count(*) AS n, count(DISTINCT id) AS d FROM {view} "
                f"WHERE {'created_at' if view == 'quarantine_rows' else 'ts_server'} "
                f"< TIMESTAMPTZ '{watermark.isoformat()}'"
            )
            [archived] = json.loads(_terragon(env, "archive", "sql", "--format", "json", query))
            in_pg_or_purged = int(in_pg[0]) + (purged or {}).get(table, 0) if in_pg else -1
            report.archive[view] = (in_pg_or_purged, archived["n"], archived["d"])


def _serving(url: str) -> str:
    """/healthz of a replica ("ok" when it answers): /readyz would also report the PostgreSQL
    restart or Valkey outage that may coincide with a kill, which the replica rides out."""
    try:
        code = httpx.get(url + "/healthz", timeout=5).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return "ok" if code == 200 else str(code)


def run_campaign(cfg: Config, say: Any = print) -> Report:
    report = Report(replicas=cfg.replicas)
    if not BUNDLE.exists():
        report.notes.append(f"SKIPPED: {BUNDLE} not built")
        return report
    work = Path(tempfile.mkdtemp(prefix="terragon-chaos-"))
    stack = Stack(work / "stack")
    proxy: CuttingProxy | None = None
    daemons: list[Daemon] = []
    services: list[Server] = []
    shared = {**shared_env(work), "TERRAGON_JOB_INTERVAL_SECONDS": f"{cfg.job_interval:g}"}
    pair: PrimaryAndStandby | None = None
    killed: set[str] = set()
    """The killed replicas' `job_slot.claimed_by` names (host:pid)."""
    labels: dict[str, str] = {}
    skewed = faketime_env(cfg.skew) if cfg.skew else None
    if cfg.skew and skewed is None:
        report.notes.append(
            "clock skew NOT applied: faketime is not installed (.ci/setup.d/faketime.sh)"
        )
    report.skew = cfg.skew if skewed else 0.0
    mischief: Mischief | None = None
    retention: RetentionDriver | None = None
    try:
        if cfg.failover:
            pair = start_pair(stack, synchronous=cfg.synchronous_standby)
        else:
            stack.start_backends()
        # Before any replica (and its rollup) starts: the archive's first watermark is that day's.
        old_day = seed_old_day(stack.db_url, shared)
        proxy_port = free_port()
        ports = [free_port() for _ in range(cfg.replicas)]
        # One public face for all replicas, as behind a load balancer: the proxy's port.
        shared["TERRAGON_PREVIEW_ORIGIN"] = (
            f"http://{{previewSessionId}}.preview.localhost:{proxy_port}"
        )

        def start(index: int) -> Server:
            extra = skewed if skewed and index == cfg.replicas - 1 else None
            server = start_replica(stack, work, index, ports[index], shared, extra)
            labels[f"{socket.gethostname()}:{server.pid}"] = f"replica {index}"
            return server

        services = [start(i) for i in range(cfg.replicas)]
        service = services[0]
        if not route_exists(service.url, "post", "/api/daemon-event"):
            report.notes.append("SKIPPED: POST /api/daemon-event has not landed yet")
            return report
        preview = route_exists(service.url, "post", "/api/internal/preview/session/start")
        proxy = CuttingProxy(ports, cfg.cut_probability, seed=cfg.seed, port=proxy_port)
        proxy.start()
        ingest = f"http://127.0.0.1:{proxy.port}"
        say(
            f"fleet: {cfg.daemons} daemons via proxy :{proxy.port} → "
            f"{cfg.replicas} replica(s) :{', :'.join(map(str, ports))}"
        )
        with stack.client() as client:
            for i in range(cfg.daemons):
                _, message = create_run(client, f"chaos-{i}")
                daemons.append(_spawn(cfg, work, i, message, ingest))
            probe_run, _ = create_run(client, "chaos-probe")
            mischief = Mischief(ingest)
            mischief.setup(client)
            zombie_run, zombie_start = create_run(client, "chaos-zombie-daemon", repo=ZOMBIE_REPO)
            zombie = _spawn(cfg, work, cfg.daemons, zombie_start, ingest)
            mischief.adopt(zombie_run, zombie.proc, work / f"daemon-{cfg.daemons}.log")
        report.runs = len(daemons)
        started = time.monotonic()
        slots_since = datetime.now(UTC)
        pg_fault: list[tuple[datetime, datetime]] = []
        kill_spans: list[tuple[datetime, datetime]] = []
        """From each replica's SIGKILL to its restart."""
        mischief.start()
        retention = RetentionDriver(
            old_day, stack.db_url, {**stack.service_env(), **shared}, _terragon
        )
        # From just before the PostgreSQL restart (at 30 % of the window): the two overlap.
        retention.start(started, delay=max(0.0, cfg.duration * 0.3 - 2))
        say(f"retention: purging {old_day.day} (rollup + purge until it is gone) during the faults")
        next_kill = cfg.kill_every
        pg_at, vk_at = cfg.duration * 0.3, cfg.duration * 0.5
        pg_done = vk_done = False
        while True:
            now = time.monotonic() - started
            alive = [d for d in daemons if d.proc.poll() is None]
            # Every scheduled fault happens once, even if the fleet or the window ended first.
            kill_done = report.service_kills > 0 or cfg.kill_every >= cfg.duration
            data_done = retention.finished(now, cfg.duration)
            if (
                (now >= cfg.duration or not alive)
                and pg_done
                and vk_done
                and kill_done
                and data_done
            ):
                break
            if now >= next_kill:
                victim = report.service_kills % cfg.replicas
                say(f"{now:5.0f}s SIGKILL replica {victim} (:{ports[victim]}), restart")
                killed.add(f"{socket.gethostname()}:{services[victim].pid}")
                down_from = datetime.now(UTC)
                services[victim].kill()
                for other, server in enumerate(services):
                    if other != victim:
                        report.others_serving[_serving(server.url)] += 1
                services[victim] = start(victim)
                kill_spans.append((down_from, datetime.now(UTC)))
                report.service_kills += 1
                next_kill += cfg.kill_every
            if not pg_done and now >= pg_at:
                fault_at = datetime.now(UTC)
                if pair is not None:
                    say(f"{now:5.0f}s SIGKILL the PostgreSQL primary, promote the standby")
                    report.failover = fail_over(pair, gap=cfg.promote_after, rebuild=cfg.rebuild)
                    say(f"{time.monotonic() - started:5.0f}s {report.failover.line()}")
                else:
                    say(f"{now:5.0f}s restart PostgreSQL")
                    assert stack.pg is not None
                    stack.pg.restart()
                # No job slot is checked from one slot before the fault (a job then in flight
                # fails with PostgreSQL) to one after it is back (slots in the gap cannot be
                # claimed), nor the slots the skewed replica ran in that span (`skew` s later).
                # A slot it failed to claim early, in the gap, is claimed by the others at its
                # time: that one is checked.
                span = (
                    fault_at - timedelta(seconds=cfg.job_interval),
                    datetime.now(UTC) + timedelta(seconds=cfg.job_interval),
                )
                pg_fault = [span]
                if report.skew:
                    ahead = timedelta(seconds=report.skew)
                    pg_fault.append((span[0] + ahead, span[1] + ahead))
                report.postgres_restarts += 1
                pg_done = True
            if not vk_done and now >= vk_at:
                vk_done = True
                probe = None
                if preview:
                    with internal_client(services[0].url) as client:
                        probe = _preview_sessions(client, services[0].url, probe_run, report)
                say(f"{now:5.0f}s stop Valkey for {cfg.valkey_down:.0f} s")
                assert stack.valkey is not None
                vk_port = stack.valkey.port
                stack.valkey.stop()
                down = time.monotonic()
                turn = 0
                while time.monotonic() - down < cfg.valkey_down:
                    if probe is not None:
                        # each replica in turn: every one must fail closed
                        _preview_probe(services[turn % len(services)].url, probe, report)
                        turn += 1
                    time.sleep(1.0)  # pacing
                report.valkey_outage_seconds = time.monotonic() - down
                stack.valkey = EmbeddedValkey(stack.root / "valkey", port=vk_port)
                stack.valkey.start()
            time.sleep(0.5)  # pacing
        retention.stop()
        mischief.stop(cfg.drain_timeout)
        if old_day.purged_after is not None:
            say(f"retention had purged {old_day.day} {old_day.purged_after:.0f} s into the faults")
        if not preview:
            report.notes.append("preview paths not landed: no access probes during the outage")
        say(f"{time.monotonic() - started:5.0f}s draining: waiting for every daemon to exit")
        deadline = time.monotonic() + cfg.drain_timeout
        for daemon in daemons:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                report.daemon_exit_codes[daemon.proc.wait(remaining)] += 1
            except subprocess.TimeoutExpired:
                daemon.proc.terminate()
                report.daemon_exit_codes[daemon.proc.wait(30)] += 1
        report.proxy_cuts = proxy.cuts
        report.proxy_failovers = proxy.failovers
        report.per_replica = [proxy.per_upstream.get(p, 0) for p in ports]
        _verify(stack.db_url, daemons, report)
        # Slots that started just before the stop may still be running: checked up to two
        # intervals back.
        slots_until = datetime.now(UTC) - timedelta(seconds=2 * cfg.job_interval)
        report.job_slots = check_job_slots(
            stack.db_url,
            [job.name for job in periodic_jobs()],
            cfg.job_interval,
            slots_since,
            slots_until,
            killed,
            labels,
            pg_fault,
            # A slot no replica claimed while one was down (the others busy with the previous
            # run, or the skewed one past it by its clock) is lost to the kill, as designed.
            [
                (a - timedelta(seconds=report.skew), b + timedelta(seconds=cfg.job_interval))
                for a, b in kill_spans
            ],
        )
        report.finalized_early = finalized_early(stack.db_url)
        for failed in report.job_slots.failed:  # what the replica said (its log goes)
            job, _, at = failed.partition("@")
            for log_file in sorted(stack.root.glob("*.log")):
                said = [
                    line
                    for line in log_file.read_text().splitlines()
                    if '"job_failed"' in line and f'"job": "{job}"' in line and f"T{at}" in line
                ]
                # the event's head and the traceback's end: where it failed
                report.notes.extend(f"{failed}: {ln[:300]} … {ln[-1200:]}" for ln in said[:1])
        for server in services:
            server.stop()
        say(f"{time.monotonic() - started:5.0f}s archive: final rollup, reconcile with PostgreSQL")
        env = {**stack.service_env(), **shared}
        _reconcile_archive(stack, env, report, old_day.purged_rows())
        report.data = check(stack.db_url, env, _terragon, mischief, old_day, report.archive)
        return report
    finally:
        if mischief is not None:
            mischief.stop(drain_timeout=0)
        if retention is not None:
            retention.stop()
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
        if proxy is not None:
            proxy.stop()
        for server in services:
            server.stop()
        stack.remove()
        if pair is not None:
            pair.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
