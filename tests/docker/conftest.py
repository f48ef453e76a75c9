"""The `docker` provider's tests share one image (made with no registry, cached by content key:
tools/docker_sandbox/image.py) and the one committed daemon bundle. They skip, with the reason,
only where no dockerd answers (`.ci/setup.d/docker.sh` installs and starts one)."""

from __future__ import annotations

import pytest

from tools.docker_sandbox.containers import docker_answers
from tools.docker_sandbox.image import ensure_image


@pytest.fixture(name="docker_image", scope="session")
def fx_docker_image() -> str:
    why = docker_answers()
    if why is not None:
        pytest.skip(f"docker: {why}")
    return ensure_image()
