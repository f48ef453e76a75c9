"""Start a `docker` sandbox: a container of the no-registry image, a git checkout made inside it,
and the daemon bundle running unchanged (stdlib only) on `DOCKER_DAEMON_SOCKET_PATH`.

The bundle and the fake agent are bind-mounted read-only (one built bundle, never copied into
an image). The container shares the host's network so that its daemon reaches the ingest URL
the service hands out (`http://127.0.0.1:<port>`): the service itself never needs a route into
the container (start messages go through the Engine API's exec). A deployment would put its
sandboxes on a network that reaches only the ingest service.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from terragon_core import DOCKER_DAEMON_SOCKET_PATH

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "packages" / "daemon_bundle" / "dist" / "terragon-daemon.pyz"
FAKE_AGENT = ROOT / "tools" / "fake_agent.py"
REPO_DIR = "/work/repo"
LABEL = "terragon.sandbox"
"""Every container started here carries it (`docker ps --filter label=terragon.sandbox`)."""

_INIT = """\
set -e
mkdir -p {repo} /var/lib/terragon
cd {repo}
if [ ! -d .git ]; then
  git init -q -b main
  git config user.email agent@example.test
  git config user.name agent
  echo hello > README.md
  echo 'export const App = () => null;' > app.tsx
  git add .
  git commit -q -m initial
fi
exec python3 /opt/terragon/terragon-daemon.pyz --socket {socket} --spool-dir /var/lib/terragon/spool --repo-dir {repo} {daemon_args}
"""


@dataclass(frozen=True, slots=True)
class DockerSandbox:
    name: str
    repo_dir: str = REPO_DIR

    def exec(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        done = subprocess.run(
            ["docker", "exec", "-w", self.repo_dir, self.name, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker exec {argv!r} in {self.name}: {done.stderr.strip()}")
        return done.stdout.strip()

    def git(self, *args: str) -> str:
        """Git as the agent runs it in the sandbox (its own config applies)."""
        return self.exec("git", *args)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return (done.stdout + done.stderr)[-4000:]

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def docker_answers() -> str | None:
    """None when the docker CLI reaches a daemon, else why not."""
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if done.returncode != 0:
        return f"dockerd does not answer: {done.stderr.strip()[:200]} (.ci/setup.d/docker.sh starts one)"
    return None


def start_sandbox(
    name: str,
    image: str,
    *,
    agent_args: Sequence[str] = (),
    daemon_args: Sequence[str] = (),
    mounts: Sequence[tuple[Path, str]] = (),
    ready_timeout: float = 30.0,
) -> DockerSandbox:
    """Run the container, wait until its daemon listens; `RuntimeError` with its logs if not."""
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    agent = shlex.join(["python3", "/opt/terragon/fake_agent.py", *agent_args])
    script = _INIT.format(
        repo=REPO_DIR,
        socket=DOCKER_DAEMON_SOCKET_PATH,
        daemon_args=shlex.join(["--agent-command", agent, *daemon_args]),
    )
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--label",
            LABEL,
            "--network",
            "host",
            "-v",
            f"{BUNDLE}:/opt/terragon/terragon-daemon.pyz:ro",
            "-v",
            f"{FAKE_AGENT}:/opt/terragon/fake_agent.py:ro",
            *[arg for source, target in mounts for arg in ("-v", f"{source}:{target}")],
            image,
            "sh",
            "-c",
            script,
        ],
        check=True,
        capture_output=True,
    )
    sandbox = DockerSandbox(name)
    probe = f"import os, sys; sys.exit(0 if os.path.exists({DOCKER_DAEMON_SOCKET_PATH!r}) else 1)"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["docker", "exec", name, "python3", "-c", probe], capture_output=True, timeout=30
        )
        if done.returncode == 0:
            return sandbox
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True
        )
        if state.stdout.strip() != "true":
            break
        time.sleep(0.1)
    logs = sandbox.logs()
    sandbox.remove()
    raise RuntimeError(f"the daemon in container {name} did not start: {logs}")
