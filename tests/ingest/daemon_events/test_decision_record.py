"""The decision's input and output structs are its SQL function's signature: the statement's
arguments and SELECT list are derived from them (repository `_statement`), and these tests hold
them equal to the function files, so a parameter or column renamed, retyped, added or dropped on
one side only fails here rather than at the first envelope."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

import terragon_ingest
from terragon_core import sql_columns
from terragon_core.quarantine import BigInt
from terragon_ingest.daemon_events.repository import Decision, DecisionInput, Q

FUNCTIONS = Path(terragon_ingest.__file__).parent / "db" / "functions"
ONE = (FUNCTIONS / "terragon_ingest_envelope.sql").read_text()
BATCH = (FUNCTIONS / "terragon_ingest_envelopes.sql").read_text()


def _signature(text: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(parameters without `p_`, OUT columns) of a function file's CREATE FUNCTION."""
    head = text[text.index("CREATE FUNCTION") : text.index("LANGUAGE")]
    params = re.findall(r"^\s+p_(\w+) (\w+)", head, re.M)
    outs = re.findall(r"^\s+OUT (\w+) (\w+)", head, re.M)
    return params, outs


def _fields(record: type[msgspec.Struct]) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind, _ in sql_columns(record)]


ALONE_ONLY = {"legacy_row", "ui_outcome", "ui_blocking_reason"}
"""Inputs only an envelope alone brings (the call with its inputs): terragon_ingest_envelope writes
them itself and does not pass them to the batch."""


def _recordset_columns(text: str) -> list[list[tuple[str, str]]]:
    """Each `jsonb_to_recordset(p_batch) AS (name type, …)` column list of the batch function."""
    lists = re.findall(r"jsonb_to_recordset\(p_batch\) AS \((.*?)\)\)", text, re.S)
    return [re.findall(r"(\w+) (\w+)", columns) for columns in lists]


def _input_disagreements(record: type[msgspec.Struct]) -> list[str]:
    params, _ = _signature(ONE)
    fields = _fields(record)
    found = [f"p_{n} {k}: a parameter, not a field" for n, k in params if (n, k) not in fields]
    found += [f"{n} {k}: a field, not a parameter" for n, k in fields if (n, k) not in params]
    # The one-envelope function passes each parameter to the batch under its own name
    # (`'seq', p_seq`), but those only an envelope alone brings.
    passed = re.findall(r"'(\w+)', (?:encode\()?p_(\w+)", ONE)
    found += [f"p_{p}: passed to the batch as {k!r}" for k, p in passed if k != p]
    names = {name for name, _ in fields}
    found += [f"p_{p}: the batch has no field for it" for _, p in passed if p not in names]
    # The batch reads each item's keys as typed columns: a field's name and type (the token's
    # digest as hex text: JSON has no bytes).
    for columns in _recordset_columns(BATCH):
        for name, kind in columns:
            if (name, kind) not in fields and (name, kind) != ("token_hash", "text"):
                found.append(f"{name} {kind}: the batch reads it, no such field")
    return found


def test_the_input_struct_is_the_functions_parameters() -> None:
    assert _input_disagreements(DecisionInput) == []
    passed = {p for _, p in re.findall(r"'(\w+)', (?:encode\()?p_(\w+)", ONE)}
    assert passed == {name for name, _ in _fields(DecisionInput)} - ALONE_ONLY
    read = {name for columns in _recordset_columns(BATCH) for name, _ in columns}
    assert read == {name for name, _ in _fields(DecisionInput)} - ALONE_ONLY | {
        "legacy_row",
        "ui_outcome",
    }  # the batch refuses an item that carries either


def test_the_output_struct_is_the_functions_columns() -> None:
    _, outs = _signature(ONE)
    assert _fields(Decision) == outs
    table = BATCH[BATCH.index("RETURNS TABLE (") : BATCH.index("LANGUAGE")]
    columns = re.findall(r"^\s+(\w+) (\w+),?$", table, re.M)
    assert columns == [("ordinal", "integer"), ("failed_sqlstate", "text"), *outs]


def test_the_statements_are_derived_from_the_structs() -> None:
    arguments = re.findall(r"p_(\w+) => %\((\w+)\)s::(\w+)", Q["ingest_envelope"])
    assert [(p, k) for p, f, k in arguments if p == f] == _fields(DecisionInput)
    for name in ("ingest_envelope", "ingest_envelopes"):
        for field in msgspec.structs.fields(Decision):
            assert re.search(rf"\b{field.name}\b", Q[name].split("FROM")[0]), (name, field.name)


def test_a_renamed_or_missing_field_is_caught() -> None:
    class Renamed(msgspec.Struct):
        sequence: BigInt | None
        thread_id: str

    found = _input_disagreements(Renamed)
    assert "sequence bigint: a field, not a parameter" in found
    assert "p_seq bigint: a parameter, not a field" in found
    assert "p_seq: the batch has no field for it" in found
    assert "seq bigint: the batch reads it, no such field" in found
