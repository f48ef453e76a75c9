"""One rule for finding the installation (CONTRACT §7, `kit/installation.py`): every command that
touches data takes `--data-dir` from the one option factory, and a command that finds nothing says
what it looked for and where, in one line, at once.

Before: `quarantine list` and `maintenance sweep` needed `--database-url` while `archive` and
`retention` found the running `up`; `serve` and `migrate` took no `--data-dir`; three copies of
the option said three different things; an unreachable URL was a 30 s wait and a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from terragon_ingest.cli import main
from terragon_ingest.kit.installation import DATA_DIR_ENV, DATA_DIR_VAR, redacted
from terragon_ingest.settings import get_settings
from tests.fixtures.processes import invoke_in_process

# Every `terragon` command reads or changes data (the database, the archive, the object store or
# the sandboxes' sockets); a new command that does not belongs here, with the reason.
NO_DATA: dict[str, str] = {}


def _leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            found += _leaves(command, path)
        else:
            found.append((path, command))
    return found


@pytest.fixture(autouse=True)
def _no_installation_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "VALKEY_URL", DATA_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()


def test_every_command_takes_the_one_data_dir_option() -> None:
    leaves = _leaves(main)
    assert len(leaves) >= 12, [name for name, _ in leaves]
    missing = []
    for name, command in leaves:
        if name in NO_DATA:
            continue
        [option] = [p for p in command.params if p.name == "data_dir"] or [None]
        if option is None:
            missing.append(name)
            continue
        assert isinstance(option, click.Option)
        # its default is the settings' variable, read when the command runs (no click envvar)
        assert (option.opts, option.envvar, option.default) == (
            ["--data-dir"],
            None,
            DATA_DIR_VAR.read,
        ), name
    assert not missing, f"commands without --data-dir: {missing}"


@pytest.mark.parametrize(
    "args",
    [
        ["quarantine", "list"],
        ["quarantine", "show", "q-1"],
        ["quarantine", "replay", "q-1"],
        ["maintenance", "sweep"],
        ["tokens", "revoke", "--thread", "t"],
        ["archive", "rollup"],
        ["retention", "purge", "--dry-run"],
        ["migrate"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_nothing_found_names_what_was_looked_for_and_where(args: list[str], tmp_path: Path) -> None:
    result = invoke_in_process([*args, "--data-dir", "here"])
    where = tmp_path / "here"
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"Error: no running terragon up in {where} (no {where / 'up.json'}) and no "
        "DATABASE_URL: start `uv run terragon up`, set DATABASE_URL (or --database-url), or "
        "pass --data-dir"
    )


def test_the_data_dir_comes_from_the_environment_and_defaults_to_dot_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = invoke_in_process(["quarantine", "list"])
    assert f"no {tmp_path / '.data' / 'up.json'}" in default.output
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from-env"))
    from_env = invoke_in_process(["maintenance", "sweep"])
    assert f"no {tmp_path / 'from-env' / 'up.json'}" in from_env.output


def test_an_up_json_whose_process_exited_is_named_not_waited_for(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(gone.stdout)  # exited: nothing answers for it
    data = tmp_path / "killed"
    data.mkdir()
    (data / "up.json").write_text(
        json.dumps({"pid": pid, "databaseUrl": "postgresql://postgres@/terragon?host=/nowhere"})
    )
    result = invoke_in_process(["quarantine", "list", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: the terragon up of {data} is not running ({data / 'up.json'} names pid {pid}, "
        f"which has exited): start it again (`uv run terragon up --data-dir {data}`), set "
        "DATABASE_URL, or pass --data-dir"
    )


def test_an_unreachable_database_is_one_line_naming_it_without_its_password(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    result = invoke_in_process(
        ["quarantine", "list", "--database-url", "postgresql://op:s3cret@127.0.0.1:1/terragon"]
    )
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith(
        "Error: PostgreSQL at postgresql://op:***@127.0.0.1:1/terragon (from DATABASE_URL / "
        "--database-url) did not answer: connection failed"
    ), line
    assert "s3cret" not in result.output and "Traceback" not in result.output
    # a refused connection is reported as such, not after a pool's 30 s of retries
    assert time.monotonic() - started < 20


def test_an_up_json_database_that_does_not_answer_names_the_file(tmp_path: Path) -> None:
    data = tmp_path / "up-data"
    data.mkdir()
    url = "postgresql://postgres@/terragon?host=" + str(tmp_path / "no-socket-here")
    (data / "up.json").write_text(json.dumps({"pid": os.getpid(), "databaseUrl": url}))
    result = invoke_in_process(["tokens", "revoke", "--thread", "t", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert f"Error: PostgreSQL at {url} (from {data / 'up.json'}, the running terragon up's)" in (
        result.output
    )


def test_redacted_hides_only_the_password() -> None:
    assert redacted("postgresql://u:pw@h:5/db?x=1") == "postgresql://u:***@h:5/db?x=1"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    multi = "postgresql://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write"
    assert redacted(multi) == multi.replace(":pw@", ":***@")
