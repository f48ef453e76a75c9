"""Files the service reads from a checkout (`.terragon/preview-validation.json`): a FIFO, a
device, a directory, a huge file or a symlink out of the checkout is refused promptly, never
read, never followed — through the reader itself and through the real service, where such a
rules file makes the legacy outcome `inconclusive` + `ui_rules_invalid`."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from terragon_core import UI_RULES_PATH, SandboxProvider
from terragon_ingest.sandbox.reader import (
    MAX_FILE_BYTES,
    LocalGitReader,
    SandboxFileRefused,
    SandboxReadError,
    SandboxRef,
)
from tests.fixtures.live_server import LiveServer
from tests.fixtures.sandbox import (
    QUICK,
    live_service,
    make_checkout,
    post_legacy_terminal,
    start_local_run,
    timed,
    ui_validation,
    write,
)

NOTHING_IS_UI = json.dumps({"schemaVersion": 1, "uiRules": ["no/such/dir/**"]})


def _release(fifo: Path) -> None:
    """Give a reader blocked on `fifo` an end of file (no-op when nobody reads it)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


def fifo(repo: Path, outside: Path) -> None:
    os.mkfifo(repo / UI_RULES_PATH)


def device(repo: Path, outside: Path) -> None:
    try:  # a character device like /dev/zero: an endless read if it were opened and read
        os.mknod(repo / UI_RULES_PATH, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD (run as root to cover this case)")


def directory(repo: Path, outside: Path) -> None:
    (repo / UI_RULES_PATH).mkdir()


def huge(repo: Path, outside: Path) -> None:
    with (repo / UI_RULES_PATH).open("wb") as fh:
        fh.truncate(1 << 32)  # 4 GiB, sparse


def symlink_out(repo: Path, outside: Path) -> None:
    write(outside, "rules.json", NOTHING_IS_UI)
    (repo / UI_RULES_PATH).symlink_to(outside / "rules.json")


def symlinked_dir_out(repo: Path, outside: Path) -> None:
    write(outside, "preview-validation.json", NOTHING_IS_UI)
    (repo / ".terragon").rmdir()
    (repo / ".terragon").symlink_to(outside)


def symlink_to_dev_zero(repo: Path, outside: Path) -> None:
    (repo / UI_RULES_PATH).symlink_to("/dev/zero")


HOSTILE_FILES: dict[str, Callable[[Path, Path], None]] = {
    "fifo": fifo,
    "device": device,
    "directory": directory,
    "huge": huge,
    "symlink_out": symlink_out,
    "symlinked_dir_out": symlinked_dir_out,
    "symlink_to_dev_zero": symlink_to_dev_zero,
}


@pytest.fixture(name="checkout")
def fx_checkout(tmp_path: Path) -> Iterator[Path]:
    repo = make_checkout(tmp_path / "sandbox")
    (repo / ".terragon").mkdir()
    yield repo
    target = repo / UI_RULES_PATH
    if target.is_fifo():
        _release(target)


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
async def test_reader_refuses_promptly(checkout: Path, tmp_path: Path, kind: str) -> None:
    HOSTILE_FILES[kind](checkout, tmp_path / "outside")
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(checkout))
    started = time.monotonic()
    with pytest.raises(SandboxFileRefused):
        await LocalGitReader().read_file(sandbox, UI_RULES_PATH)
    assert time.monotonic() - started < 1.0


async def test_reader_reads_a_plain_file_and_refuses_escapes(checkout: Path) -> None:
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(checkout))
    reader = LocalGitReader()
    write(checkout, UI_RULES_PATH, NOTHING_IS_UI)
    assert await reader.read_file(sandbox, UI_RULES_PATH) == NOTHING_IS_UI.encode()
    assert await reader.read_file(sandbox, ".terragon/absent.json") is None
    assert await reader.read_file(sandbox, "absent-dir/x.json") is None
    write(checkout, "big.json", "x" * (MAX_FILE_BYTES + 1))
    for path in ("../../etc/passwd", "/etc/passwd", "src/../../x", "", "a//b", "./README.md"):
        with pytest.raises(SandboxReadError):
            await reader.read_file(sandbox, path)
    with pytest.raises(SandboxFileRefused, match="over"):
        await reader.read_file(sandbox, "big.json")


async def test_a_checkout_that_is_a_symlink_is_refused(checkout: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(checkout)
    write(checkout, UI_RULES_PATH, NOTHING_IS_UI)
    sandbox = SandboxRef(SandboxProvider.LOCAL, "box", str(link))
    with pytest.raises(SandboxReadError):
        await LocalGitReader().read_file(sandbox, UI_RULES_PATH)
    with pytest.raises(SandboxReadError):
        await LocalGitReader().read_head_sha(sandbox)


@pytest.fixture(name="live")
def fx_live(settings) -> Iterator[LiveServer]:
    with live_service(settings) as server:
        yield server


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_hostile_rules_file_is_ui_rules_invalid_quickly(
    live: LiveServer, checkout: Path, tmp_path: Path, kind: str
) -> None:
    started = start_local_run(live, checkout)
    write(checkout, "src/App.tsx")  # a UI change by the default rules
    HOSTILE_FILES[kind](checkout, tmp_path / "outside")
    response, seconds = timed(lambda: post_legacy_terminal(live, started["daemonMessage"]["token"]))
    assert response.status_code == 200, response.text
    assert seconds < QUICK
    body = ui_validation(live)
    assert (body["uiValidationOutcome"], body["blockingReason"]) == (
        "inconclusive",
        "ui_rules_invalid",
    )
