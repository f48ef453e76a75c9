"""What the chaos campaign and the multi-replica soak share: N `terragon serve` replicas on the
same databases, each with its own data directory, the periodic jobs on, the archive and payload
settings passed through (`shared_env`), behind the balancing proxy; and an S3 bucket on moto's
server for the archive and the offloaded payloads (`archive_bucket`)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tools.bench.stack import Server, Stack, environ, free_port
from tools.chaos.proxy import CuttingProxy

PASS_THROUGH = ("TERRAGON_ARCHIVE_", "OBJECT_STORE_")
"""Where the archive and payloads live (S3 or a shared directory): the caller's, if set."""


def shared_env(work: Path) -> dict[str, str]:
    """What every replica and archive command shares: the caller's archive/payload settings, or
    a local archive directory and object store under `work`; the periodic jobs on."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_THROUGH)}
    env["TERRAGON_BACKGROUND_JOBS"] = "true"
    if not any(k in env for k in ("TERRAGON_ARCHIVE_URL", "TERRAGON_ARCHIVE_DIR")):
        env["TERRAGON_ARCHIVE_DIR"] = str(work / "archive")
    env.setdefault("OBJECT_STORE_URL", f"file://{work / 'objects'}")
    return env


def start_replica(
    stack: Stack,
    work: Path,
    index: int,
    port: int,
    shared: dict[str, str],
    extra: dict[str, str] | None = None,
) -> Server:
    """Replica `index` on `port` with its own data directory (as on its own host) and `extra`
    settings of its own; it becomes `stack.service` (what `stack.client()` talks to)."""
    own = {"TERRAGON_DATA_DIR": str(work / f"replica-{index}"), **(extra or {})}
    return stack.start_service(port, env={**shared, **own})


@dataclass
class Replicas:
    """`count` replicas started on free ports and, with more than one, the proxy in front (cut
    probability 0: a plain round-robin balancer). `url` is where clients go."""

    stack: Stack
    work: Path
    count: int
    shared: dict[str, str]
    ports: list[int] = field(default_factory=list)
    services: list[Server] = field(default_factory=list)
    proxy: CuttingProxy | None = None

    def start(self) -> None:
        self.ports = [free_port() for _ in range(self.count)]
        try:
            for index, port in enumerate(self.ports):
                self.services.append(start_replica(self.stack, self.work, index, port, self.shared))
            if self.count > 1:
                self.proxy = CuttingProxy(self.ports, 0.0)
                self.proxy.start()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        if self.proxy is not None:
            return f"http://127.0.0.1:{self.proxy.port}"
        return self.services[0].url

    def pids(self) -> list[int]:
        """Each replica's main process (its workers are its children)."""
        return [s.pid for s in self.services if s.proc is not None]

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for server in self.services:
            server.stop()


@contextmanager
def archive_bucket(enabled: bool, prefix: str = "terragon-s3-") -> Iterator[list[str]]:
    """With `enabled`, a moto S3 server and a bucket; the archive and payload settings point at
    it for the block (processes started in it inherit them, `shared_env` passes them on). Yields
    a list that holds, after the block, lines for the report."""
    if not enabled:
        yield []
        return
    from tools.s3_server import start_bucket

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server, target = start_bucket(Path(tmp))
        settings = {
            **target.env(),
            "TERRAGON_ARCHIVE_URL": f"{target.url}/archive",
            "OBJECT_STORE_URL": f"{target.url}/objects",
        }
        lines: list[str] = []
        try:
            with environ(**settings):
                yield lines
            archive = [k for k in target.child("archive").list_keys() if k.endswith(".parquet")]
            objects = target.child("objects").list_keys()
            lines.append(
                f"s3: archive {settings['TERRAGON_ARCHIVE_URL']} on {target.endpoint}: "
                f"{len(archive)} Parquet object(s); payload store: {len(objects)} object(s)"
            )
        finally:
            server.stop()
