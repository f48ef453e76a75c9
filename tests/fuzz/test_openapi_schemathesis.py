"""Schemathesis over the real app's OpenAPI schema (`/schema/openapi.json`), served by uvicorn on
127.0.0.1 against real PostgreSQL + Valkey: no server errors (5xx other than a documented 502 or
503) and no undocumented status codes, on every operation.

Short form (default run): ~100 cases in total. Long form: ≥ 1 000 cases with
TERRAGON_LONG_TESTS=1.

`test_the_cli_with_every_check_*` run the schemathesis CLI itself (`st run --checks all`: every
check, every operation, the coverage, fuzzing and stateful phases) with and without the internal
bearer, at a small example count, and require 0 failures and 0 errors: the schema is the truth
about every answer (error bodies, statuses, request constraints). `schemathesis.toml` at the
repository root configures it, as it does `uv run st run` by hand.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.live_server import LiveServer
from tests.fixtures.net import free_port
from tests.fuzz.conftest import LONG

SHORT_CASES = 100
CLI_EXAMPLES = 3
"""Per operation and phase: two CLI runs stay under ~60 s on a two-core machine."""
REPO_ROOT = Path(__file__).resolve().parents[2]
LONG_CASES = 1200
UPSTREAM_OR_OUTAGE = frozenset({502, 503})
"""The 5xx an operation may answer when it documents them: an upstream that failed (502: a
sandbox's daemon did not take a start message) or a dependency that is down (503)."""
KNOWN_SERVER_ERRORS: dict[str, str] = {}
"""Found by this suite and reported; printed on every run, excluded from the assertion. Remove an
entry once its owner fixes it (the long form, TERRAGON_LONG_TESTS=1, never excludes them)."""


@pytest.fixture(name="live_url")
def fx_live_url(settings: Any) -> Iterator[str]:
    server = LiveServer(settings, free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _documented(operation: Any) -> set[str]:
    return set(operation.definition.raw.get("responses", {}))


def _exercise(
    operation: Any, base_url: str, examples: int, seen: Counter[str], problems: list[str]
) -> None:
    documented = _documented(operation)
    label = f"{operation.method.upper()} {operation.path}"
    headers = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        code = response.status_code
        seen[f"{label} -> {code}"] += 1
        if code >= 500 and not (code in UPSTREAM_OR_OUTAGE and str(code) in documented):
            problems.append(f"{label}: server error {code}: {response.text[:200]}")
        elif str(code) not in documented and "default" not in documented:
            problems.append(
                f"{label}: undocumented status {code} (documented: {sorted(documented)})"
            )

    exercise()


def run_schemathesis(base_url: str, total_cases: int) -> tuple[Counter[str], list[str]]:
    # A config of its own, not the repository's `schemathesis.toml`: that one disables the
    # session-origin operations for the CLI (their hosts do not resolve); here they are sent to
    # the API's host for their documented 404.
    schema = schemathesis.openapi.from_url(
        base_url + "/schema/openapi.json", config=SchemathesisConfig()
    )
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations, "the schema lists no operations"
    per_operation = max(3, math.ceil(total_cases / len(operations)))
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for operation in operations:
        _exercise(operation, base_url, per_operation, seen, problems)
    print(f"schemathesis: {sum(seen.values())} cases over {len(operations)} operations")
    for key, count in sorted(seen.items()):
        print(f"  {key}: {count}")
    return seen, problems


def test_openapi_short_form_has_no_server_errors_or_undocumented_statuses(live_url: str) -> None:
    seen, problems = run_schemathesis(live_url, SHORT_CASES)
    assert sum(seen.values()) >= SHORT_CASES * 0.9
    known = [p for p in problems if p.split(":", 1)[0] in KNOWN_SERVER_ERRORS]
    for problem in sorted(set(known)):
        print(f"KNOWN BUG (not failing the short form): {problem[:200]}")
    unknown = [p for p in problems if p not in known]
    assert not unknown, "\n".join(sorted(set(unknown))[:40])


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="long form: set TERRAGON_LONG_TESTS=1 (≥ 1 000 cases)")
def test_openapi_long_form_has_no_server_errors_or_undocumented_statuses(live_url: str) -> None:
    seen, problems = run_schemathesis(live_url, LONG_CASES)
    assert sum(seen.values()) >= 1000
    assert not problems, "\n".join(sorted(set(problems))[:40])


def run_cli(base_url: str, *, token: str | None, examples: int) -> tuple[int, str]:
    """`st run <schema> --checks all` from the repository root (its `schemathesis.toml`).

    Exactly the command an operator runs (CONTRIBUTING, issue 13) with `--url` added for the
    test server's port: `schemathesis.toml` disables the session-origin operations (their own
    `servers`, `*.preview.localhost`, which Python's resolver cannot reach; see the comment
    there). The short form above sends them to the API's host for their documented 404."""
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{base_url}/schema/openapi.json",
        "--url",
        base_url,
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        "1",
        "--no-color",
    ]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _summary(output: str) -> str:
    pattern = r"(failure|error|passed|No issues)"
    lines = [line for line in output.splitlines() if re.search(pattern, line)]
    return lines[-1] if lines else output[-400:]


@pytest.mark.parametrize("token", [INTERNAL_TOKEN, None], ids=["with-bearer", "without-bearer"])
def test_the_cli_with_every_check_finds_no_failure(live_url: str, token: str | None) -> None:
    examples = LONG_CASES // 40 if LONG else CLI_EXAMPLES
    code, output = run_cli(live_url, token=token, examples=examples)
    print(output[-3000:])
    assert re.search(r"Operations:\s+(\d+) selected", output), output[-2000:]
    assert code == 0, f"st run: {_summary(output)}\n{output[-6000:]}"
