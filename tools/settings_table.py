"""The configuration table and `.env.example`, generated from the settings objects.

    uv run python -m tools.settings_table            # print the table
    uv run python -m tools.settings_table --write    # update docs/configuration.md and .env.example
    uv run python -m tools.settings_table --check    # exit 1 when either is stale

Every variable is declared once, in its deployable's settings module (`terragon_core.env.setting`:
name, type, default, what it does); a variable two deployables read is one row naming both (its
words are the first declaration's, in the order service, dashboard, daemon).
`tests/lint/test_settings_table.py` fails when the files differ from what this renders.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from terragon_core.env import EnvVar, env_vars
from terragon_daemon import settings as daemon_settings
from terragon_dashboard import settings as dashboard_settings
from terragon_ingest import settings as service_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION_MD = REPO_ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
WRITE_COMMAND = "uv run python -m tools.settings_table --write"

_NEW_CONFIGURATION_MD = f"""# Configuration

Every setting is an environment variable; the table is generated from the settings objects
(`{WRITE_COMMAND}`).

{START}
{END}
"""


TEST_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "TERRAGON_TEST_DATABASE_URL",
        "url",
        None,
        "The tests use this PostgreSQL server instead of an embedded one.",
    ),
    EnvVar(
        "TERRAGON_TEST_VALKEY_URL",
        "url",
        None,
        "The tests use this Valkey server instead of an embedded one.",
    ),
    EnvVar(
        "TERRAGON_TEST_S3_URL",
        "url",
        None,
        "The tests use this bucket (`s3://bucket/prefix`, must exist; credentials from `AWS_*`) "
        "instead of the moto server they start.",
    ),
    EnvVar(
        "TERRAGON_TEST_S3_ENDPOINT",
        "url",
        None,
        "The S3 API's URL for `TERRAGON_TEST_S3_URL` (unset: AWS).",
    ),
    EnvVar(
        "TERRAGON_TEST_PYTHON310",
        "path",
        None,
        "A Python 3.10 interpreter for the daemon bundle's oldest-Python tests.",
        shown_default="`python3.10` on `PATH`, else pyenv's",
    ),
    EnvVar(
        "PROMTOOL",
        "path",
        None,
        "Prometheus' `promtool`, which checks the shipped alert rules (else the test is skipped; "
        "`tools/alerts/get-promtool.sh` fetches one).",
        shown_default="`promtool` on `PATH`",
    ),
    EnvVar(
        "TERRAGON_LONG_TESTS",
        "bool",
        False,
        "`1`: the fuzz suites run their long form (minutes) instead of the short one.",
    ),
)
"""Switches of the test fixtures (`tests/conftest.py`, `tests/fuzz/conftest.py`,
`tools/s3_server.py`), which read them themselves: no deployable reads them, no operator sets them."""


@dataclass
class Row:
    var: EnvVar | daemon_settings.EnvVar
    deployables: list[str]


def _declared() -> list[tuple[str, EnvVar | daemon_settings.EnvVar]]:
    found: list[tuple[str, EnvVar | daemon_settings.EnvVar]] = []
    found += [("service", var) for _, var in env_vars(service_settings.Settings)]
    found += [("service", var) for var in service_settings.LIBRARY_VARS]
    found += [("dashboard", var) for _, var in env_vars(dashboard_settings.DashboardSettings)]
    found += [("dashboard", var) for var in dashboard_settings.LIBRARY_VARS]
    found += [("daemon", var) for var in daemon_settings.ENV_VARS]
    found += [("tests", var) for var in TEST_VARS]
    return found


def rows() -> list[Row]:
    """One row per variable, in declaration order; a variable declared twice must agree on its
    type (its words and default are the first declaration's)."""
    merged: dict[str, Row] = {}
    for deployable, var in _declared():
        row = merged.get(var.name)
        if row is None:
            merged[var.name] = Row(var, [deployable])
            continue
        if row.var.kind != var.kind:
            raise ValueError(
                f"{var.name} is a {row.var.kind} for {row.deployables[0]} but a {var.kind} for "
                f"{deployable}"
            )
        if deployable not in row.deployables:
            row.deployables.append(deployable)
    return list(merged.values())


def _default_text(var: EnvVar | daemon_settings.EnvVar) -> str:
    if isinstance(var, EnvVar):
        return var.default_text()
    if var.shown_default is not None:
        return var.shown_default
    return "unset" if var.default is None else f"`{var.default}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    lines = [
        "| variable | type | default | what it does | read by |",
        "|---|---|---|---|---|",
    ]
    for row in rows():
        var = row.var
        kind = "list (comma-separated)" if var.kind == "list" else var.kind
        lines.append(
            f"| `{var.name}` | {kind} | {_cell(_default_text(var))} | {_cell(var.doc)} "
            f"| {', '.join(row.deployables)} |"
        )
    return "\n".join(lines) + "\n"


def render_env_example() -> str:
    out = [
        "# terragon's environment variables, every one optional for `terragon up`. Generated from",
        f"# the settings objects by `{WRITE_COMMAND}`; the table with",
        "# types and defaults: docs/configuration.md. `terragon serve` refuses to start without the",
        "# four secrets (TERRAGON_INTERNAL_TOKEN, GITHUB_WEBHOOK_SECRET, TERRAGON_SIGNING_SECRET,",
        "# TERRAGON_METRICS_TOKEN), each its own, at least 32 bytes:",
        f"#   {service_settings.MAKE_SECRET_COMMAND}",
        "# Uncomment what you set.",
    ]
    section = ""
    for row in rows():
        var = row.var
        if row.deployables == ["tests"]:
            continue  # not an installation's: see docs/configuration.md
        if row.deployables[0] != section:
            section = row.deployables[0]
            out += ["", f"# ---- {section} " + "-" * (90 - len(section))]
        default = _default_text(var)
        words = f"{var.doc} Default: {default.replace('`', '')}."
        if len(row.deployables) > 1:
            words += f" Read by: {', '.join(row.deployables)}."
        out.append("")
        out += textwrap.wrap(words, 98, initial_indent="# ", subsequent_indent="# ")
        out.append(f"# {var.name}={_example_value(var)}")
    return "\n".join(out) + "\n"


def _example_value(var: EnvVar | daemon_settings.EnvVar) -> str:
    """The default as a value to uncomment; empty for a secret or a default that is not one."""
    if (isinstance(var, EnvVar) and var.secret) or var.shown_default is not None:
        return ""
    if var.default is None or var.default == ():
        return ""
    if isinstance(var.default, bool):
        return str(var.default).lower()
    if isinstance(var.default, float):
        return f"{var.default:g}"
    return str(var.default)


def configuration_md(current: str | None) -> str:
    """`current` (docs/configuration.md, or None when it does not exist) with the table between
    the markers."""
    text = current if current is not None else _NEW_CONFIGURATION_MD
    if START not in text or END not in text:
        raise ValueError(f"{CONFIGURATION_MD} has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table()}{END}{tail}"


def stale() -> list[Path]:
    """The generated files that differ from what the settings objects render."""
    current = CONFIGURATION_MD.read_text() if CONFIGURATION_MD.exists() else None
    found = []
    if current is None or configuration_md(current) != current:
        found.append(CONFIGURATION_MD)
    if not ENV_EXAMPLE.exists() or ENV_EXAMPLE.read_text() != render_env_example():
        found.append(ENV_EXAMPLE)
    return found


def write() -> None:
    current = CONFIGURATION_MD.read_text() if CONFIGURATION_MD.exists() else None
    CONFIGURATION_MD.parent.mkdir(parents=True, exist_ok=True)
    CONFIGURATION_MD.write_text(configuration_md(current))
    ENV_EXAMPLE.write_text(render_env_example())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_table", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 when they are stale")
    args = parser.parse_args(argv)
    if args.write:
        write()
        return 0
    if args.check:
        if found := stale():
            names = ", ".join(str(p.relative_to(REPO_ROOT)) for p in found)
            print(f"stale: {names}; run `{WRITE_COMMAND}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(render_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
