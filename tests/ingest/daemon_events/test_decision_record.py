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


def _input_disagreements(record: type[msgspec.Struct]) -> list[str]:
    params, _ = _signature(ONE)
    fields = _fields(record)
    found = [f"p_{n} {k}: a parameter, not a field" for n, k in params if (n, k) not in fields]
    found += [f"{n} {k}: a field, not a parameter" for n, k in fields if (n, k) not in params]
    # The batch function calls the one decision by name, each from the item's key of that name
    # (`e ->> 'seq'`), or a constant for the second call's inputs (never grouped).
    for name, expression in re.findall(r"p_(\w+) => (.*?)(?:,\n|\) AS x)", BATCH):
        keys = re.findall(r"e -{1,2}>{1,2} '(\w+)'", expression)
        if name not in dict(fields):
            found.append(f"p_{name}: the batch passes it, no field")
        elif keys and keys != [name]:
            found.append(f"p_{name}: the batch reads it from {keys}")
    return found


def test_the_input_struct_is_the_functions_parameters() -> None:
    assert _input_disagreements(DecisionInput) == []
    batch = dict(re.findall(r"p_(\w+) => (.*?)(?:,\n|\) AS x)", BATCH))
    assert set(batch) == {name for name, _ in _fields(DecisionInput)}


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
    assert "p_seq: the batch passes it, no field" in found
