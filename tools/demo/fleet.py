"""Run the demo fleet: one daemon process per sandbox, new runs every round, a zombie or two.

Everything goes through the front doors a real platform uses: `POST /api/internal/threads`,
`PUT /api/internal/flags/...`, `POST /api/internal/runs/start` (delivered to each daemon's Unix
socket), and — for the stale-daemon case — `POST /api/daemon-event` with a superseded run's token.
With `--provider docker` (and a dockerd answering), every other sandbox whose profile has a git
checkout runs in a container instead (tools/docker_sandbox: the no-registry image, the same
bundle and fake agent inside): its thread is a `docker` one, so run start delivers through the
Engine API and the terminal `endSha` is compared with the container's HEAD. Sandbox 0 also
serves a preview page; the fleet logs once the short link that opens it in a browser
(`tools.demo.preview`: a new session on sandbox 0's current run at each visit).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog

from tools.demo.preview import DemoPreview
from tools.demo.profiles import USERS, Profile, profile_for
from tools.docker_sandbox.containers import REPO_DIR, DockerSandbox, docker_answers, start_sandbox
from tools.docker_sandbox.image import ensure_image

log = structlog.get_logger()

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "packages" / "daemon_bundle" / "dist" / "terragon-daemon.pyz"
FAKE_AGENT = ROOT / "tools" / "fake_agent.py"


@dataclass
class Sandbox:
    index: int
    profile: Profile
    thread_id: str
    user_id: str
    checkout: Path
    socket: Path
    process: subprocess.Popen[bytes] | None = None
    container: DockerSandbox | None = None
    last_start: dict[str, Any] = field(default_factory=dict)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _make_checkout(path: Path, git: bool) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if not git or (path / ".git").exists():
        return
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "demo@example.test")
    _git(path, "config", "user.name", "demo agent")
    (path / "README.md").write_text("demo\n")
    (path / "app.tsx").write_text("export const App = () => null;\n")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "initial")


class Fleet:
    def __init__(
        self,
        api: str,
        token: str,
        data_dir: Path,
        socket_dir: Path,
        size: int,
        preview_port: int = 0,
        provider: str = "local",
    ) -> None:
        self.token, self.preview_port = token, preview_port
        self.provider = provider
        self.http = httpx.Client(
            base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )
        self.api = api
        self.data_dir = data_dir
        self.socket_dir = socket_dir
        self.sandboxes = [self._sandbox(i) for i in range(size)]
        self.preview: DemoPreview | None = None

    def _sandbox(self, i: int) -> Sandbox:
        profile = profile_for(i)
        return Sandbox(
            index=i,
            profile=profile,
            thread_id=f"demo-thread-{i}",
            user_id=USERS[i % len(USERS)],
            checkout=self.data_dir / "checkouts" / f"sb{i}",
            socket=self.socket_dir / f"demo-sb{i}.sock",
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """`terragon up` starts the fleet beside the server: wait until the API answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{self.api} did not become ready in {timeout:.0f} s")

    def setup(self) -> None:
        self.wait_ready()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        for repo, strict in {(s.profile.repo, s.profile.strict) for s in self.sandboxes}:
            self.http.put(
                "/api/internal/flags/daemonRunIdStrict",
                json={"enabled": strict, "repoFullName": repo},
            ).raise_for_status()
        image = self._docker_image()
        for sb in self.sandboxes:
            if image is not None and sb.profile.git and sb.index % 2 == 1:
                sb.container = self._start_container(sb, image)
                thread = {"sandboxProvider": "docker", "codesandboxId": sb.container.name}
                thread["repoDir"] = REPO_DIR
            else:
                _make_checkout(sb.checkout, sb.profile.git)
                thread = {"sandboxProvider": "local", "codesandboxId": f"demo-sb{sb.index}"}
                thread["repoDir"] = str(sb.checkout)
                sb.process = self._spawn_daemon(sb)
            self.http.post(
                "/api/internal/threads",
                json={
                    "threadId": sb.thread_id,
                    "userId": sb.user_id,
                    "repoFullName": sb.profile.repo,
                    **thread,
                },
            ).raise_for_status()
        self.preview = DemoPreview(self.api, self.token, self.preview_port)
        in_docker = sum(sb.container is not None for sb in self.sandboxes)
        log.info(
            "demo_fleet_ready",
            sandboxes=len(self.sandboxes),
            in_containers=in_docker,
            preview=self.preview.link,
        )

    def _docker_image(self) -> str | None:
        if self.provider != "docker":
            return None
        why = docker_answers()
        if why is not None:
            log.warning("demo_docker_unavailable", reason=why, action="every sandbox runs locally")
            return None
        log.info(
            "demo_sandbox_image", action="building (or finding) the image; no registry is used"
        )
        return ensure_image()

    def _start_container(self, sb: Sandbox, image: str) -> DockerSandbox:
        daemon_args = ["--flush-interval", "0.3", "--log-level", "warning"]
        if sb.profile.payload_version == 1:
            daemon_args += ["--payload-version", "1"]
        return start_sandbox(
            f"terragon-demo-sb{sb.index}",
            image,
            agent_args=["--rate", "20", *sb.profile.agent_args],
            daemon_args=daemon_args,
        )

    def _spawn_daemon(self, sb: Sandbox) -> subprocess.Popen[bytes]:
        agent = shlex.join(
            [sys.executable, str(FAKE_AGENT), "--rate", "20", *sb.profile.agent_args]
        )
        args = [
            sys.executable,
            str(BUNDLE),
            "--socket",
            str(sb.socket),
            "--spool-dir",
            str(self.data_dir / "spool" / f"sb{sb.index}"),
            "--agent-command",
            agent,
            "--flush-interval",
            "0.3",
            "--log-level",
            "warning",
        ]
        if sb.profile.payload_version == 1:
            args += ["--payload-version", "1"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not sb.socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon for sandbox {sb.index} did not start")
            time.sleep(0.05)
        return proc

    def round(self, number: int) -> None:
        for sb in self.sandboxes:
            previous = sb.last_start
            response = self.http.post(
                "/api/internal/runs/start",
                json={
                    "threadId": sb.thread_id,
                    "threadChatId": "main",
                    "startRequestId": f"round-{number}-{uuid.uuid4().hex[:8]}",
                    "triggerSource": "ui",
                },
            )
            if response.status_code != 200:
                log.warning(
                    "demo_run_start_failed",
                    thread_id=sb.thread_id,
                    status=response.status_code,
                    body=response.text[:200],
                )
                continue
            sb.last_start = response.json()
            if previous and sb.profile.strict and number % 2 == 0:
                self._zombie(sb, previous)
            if sb.index == 0 and self.preview is not None:
                self.preview.run_started(sb.thread_id, sb.user_id, sb.last_start)

    def _zombie(self, sb: Sandbox, stale: dict[str, Any]) -> None:
        """A daemon of a superseded run keeps posting: it must be quarantined as `mismatch`."""
        message = stale["daemonMessage"]
        body = {
            "threadId": sb.thread_id,
            "threadChatId": "main",
            "payloadVersion": 2,
            "runId": message["runId"],
            "eventId": str(uuid.uuid4()),
            "seq": 999,
            "messages": [
                {
                    "type": "assistant",
                    "uuid": str(uuid.uuid4()),
                    "message": {"content": [{"type": "text", "text": "late"}]},
                }
            ],
        }
        response = httpx.post(
            f"{self.api}/api/daemon-event",
            json=body,
            timeout=10,
            headers={"X-Daemon-Token": message["token"]},
        )
        log.debug(  # the service's summary line counts it (quarantined: mismatch)
            "demo_zombie_envelope_sent",
            thread_id=sb.thread_id,
            status=response.status_code,
            body=response.text[:120],
        )

    def close(self) -> None:
        for sb in self.sandboxes:
            if sb.process and sb.process.poll() is None:
                sb.process.send_signal(signal.SIGTERM)
        for sb in self.sandboxes:
            if sb.process:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    sb.process.wait(15)
                if sb.process.poll() is None:
                    sb.process.kill()
        for sb in self.sandboxes:
            if sb.container is not None:
                sb.container.remove()
        if self.preview is not None:
            self.preview.close()
        self.http.close()
