"""The READMEs and docs/ print commands that run as printed (issue 24 item 3): every `terragon` command is
written `uv run terragon …`, and each one's subcommands and options exist (`--help` parses for
it). Before: bare `terragon …` failed without `uv run`, and nothing noticed a renamed option.

Placeholders (`ID`, `T`, `"…"`, `[--flag]`, `a | b`) are read as the Commands table writes them:
brackets are dropped, `|` and `a|b` offer alternatives, and an option must exist on the command.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from terragon_ingest.cli import main
from tests.fixtures.processes import invoke_in_process

ROOT = Path(__file__).resolve().parents[3]
READMES = [
    ROOT / "README.md",
    ROOT / "packages/ingest/README.md",
    ROOT / "apps/dashboard/README.md",
    *sorted((ROOT / "docs").glob("*.md")),  # the README's detail moved there (issue 25)
]
PREFIX = "uv run terragon "
INLINE = re.compile(r"`(uv run terragon [^`]+)`")
BARE = re.compile(r"(?<![\w/-])`terragon (?:[a-z][\w-]*)")
"""A command span that starts `terragon <subcommand>` without `uv run` (the dashboard's printed
lines are its own and excluded below: they belong to the page)."""


def _command_lines(text: str) -> list[str]:
    """Inline code spans and code-block lines that start `uv run terragon `."""
    found = [" ".join(m.split()) for m in INLINE.findall(text)]
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.startswith(PREFIX):
            found.append(re.split(r"\s{2,}|\s#\s", line)[0].strip())  # the description after
    return found


def _tokens(command: str) -> list[str]:
    body = command.removeprefix(PREFIX).replace("…", "")
    try:
        words = shlex.split(body)
    except ValueError:
        words = body.split()
    return [w.strip("[]") for w in words if w.strip("[]")]


def _leaves(tokens: list[str]) -> list[tuple[list[str], list[str]]]:
    """(command path, the options given to it) for each alternative a line offers."""
    group: click.Group = main
    prefix: list[str] = []
    leaves: list[tuple[list[str], list[str]]] = []
    for token in tokens:
        names = token.split("|")
        if token != "|" and all(name in group.commands for name in names):
            chosen = group.commands[names[0]]
            if len(names) == 1 and isinstance(chosen, click.Group) and not leaves:
                prefix, group = [*prefix, names[0]], chosen
            else:
                leaves += [([*prefix, name], []) for name in names]
        elif token.startswith("--") and leaves:
            leaves[-1][1].append(token.split("=", 1)[0])
    return leaves or [(prefix, [])]


def _command(path: list[str]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group), path
        command = command.commands[name]
    return command


def _all_lines() -> list[tuple[str, str]]:
    return [(p.name, line) for p in READMES for line in _command_lines(p.read_text())]


def test_the_readmes_print_terragon_commands_only_as_uv_run_terragon() -> None:
    bare = []
    for readme in READMES:
        for number, line in enumerate(readme.read_text().splitlines(), 1):
            if "dashboard prints" in line or "exact `terragon quarantine" in line:
                continue
            if BARE.search(line) or re.match(r"terragon [a-z]", line):
                bare.append(f"{readme.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "\n".join(bare)


def test_the_readme_names_every_command_of_the_cli() -> None:
    named = {" ".join(path) for _, line in _all_lines() for path, _ in _leaves(_tokens(line))}
    every = set()
    for name, command in main.commands.items():
        if isinstance(command, click.Group):
            every |= {f"{name} {sub}" for sub in command.commands}
        else:
            every.add(name)
    assert every <= named, f"not in any README: {sorted(every - named)}"


@pytest.mark.parametrize(("readme", "line"), _all_lines(), ids=lambda v: str(v)[:60])
def test_each_printed_command_and_its_options_exist(readme: str, line: str) -> None:
    for path, options in _leaves(_tokens(line)):
        assert path, f"{readme}: {line!r} names no command"
        command = _command(path)
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        known |= {opt for param in main.params for opt in getattr(param, "opts", [])}
        unknown = [o for o in options if o not in known | {"--help"}]
        assert not unknown, f"{readme}: {line!r}: {' '.join(path)} has no {unknown}"
        if not isinstance(command, click.Group):
            result = invoke_in_process([*path, "--help"])
            assert result.exit_code == 0, result.output
