"""Bulk validation in SQL: one SELECT that types every field and names every problem of every row.

The query runs over an Arrow batch registered in DuckDB. Its result has the typed fields (defaults applied),
``_row`` (the source row number), ``_reason`` (NULL for a valid row, otherwise every problem found, ``"; "``
separated) and ``_raw`` (the row as read, only for rejected rows). Nothing loops over rows in Python.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from adpilot.store.fields import FieldSpec
from adpilot.store.privacy import hide_json_ids_sql

InputKind = Literal["str", "num", "ts", "other"]
Inputs = dict[str, tuple[str, InputKind]]  # field -> (SQL expression reading it, how it arrives)


@dataclass(frozen=True)
class Check:
    """An extra rule over parsed values: rows where ``condition`` is true get ``message`` (SQL expressions)."""

    condition: str
    message: str


def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal for a Python default value.

    >>> literal("it's"), literal(True), literal(1.5), literal([]), literal({})
    ("'it''s'", 'TRUE', '1.5', '[]::VARCHAR[]', 'MAP {}::MAP(VARCHAR, VARCHAR)')
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]::VARCHAR[]"
    if isinstance(value, dict) and not value:
        return "MAP {}::MAP(VARCHAR, VARCHAR)"
    return literal(json.dumps(value, sort_keys=True)) + "::JSON"


def parsed(name: str) -> str:
    """The column holding the parsed (typed, before defaults) value of field ``name``."""
    return quote("p$" + name)


def input_kind(arrow_type: pa.DataType) -> InputKind:
    """How a column of this Arrow type enters validation: as text, number, timestamp or something else."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "str"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "num"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "ts"
    return "other"


def as_text(expr: str, kind: InputKind) -> str:
    """The input as text, empty text meaning missing."""
    return f"NULLIF({expr}, '')" if kind == "str" else f"CAST({expr} AS VARCHAR)"


def _epoch(number: str) -> str:
    """Unix seconds, or milliseconds when the number is too large to be seconds (before year 5138)."""
    return (f"CASE WHEN {number} >= 0 AND {number} < 1e11 THEN to_timestamp({number}) "
            f"WHEN {number} >= 1e11 AND {number} < 1e14 THEN to_timestamp({number} / 1000) END")


def _parse(spec: FieldSpec, s: str, kind: InputKind) -> str:
    """SQL turning the normalised input ``s`` into the field's type; NULL when it cannot."""
    if spec.kind in ("str",):
        return s if kind == "str" else f"CAST({s} AS VARCHAR)"
    if spec.kind == "enum":
        normal = f"lower(trim(CAST({s} AS VARCHAR)))"
        if kind != "str":
            return normal
        # choices are lower case without spaces: text already equal to one skips the (costlier) normalising
        return f"CASE WHEN {s} IN ({', '.join(literal(c) for c in spec.choices)}) THEN {s} ELSE {normal} END"
    if spec.kind in ("float", "int", "bool"):
        sql_type = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN"}[spec.kind]
        return f"TRY_CAST({s} AS {sql_type})"
    if spec.kind == "ts":
        if kind == "num":
            return _epoch(f"CAST({s} AS DOUBLE)")
        if kind == "ts":
            return f"CAST({s} AS TIMESTAMPTZ)"
        return f"coalesce(TRY_CAST({s} AS TIMESTAMPTZ), {_epoch(f'TRY_CAST({s} AS DOUBLE)')})"
    if spec.kind == "list":
        if kind == "str":
            return (f"CASE WHEN starts_with(ltrim({s}), '[') THEN TRY_CAST(TRY_CAST({s} AS JSON) AS VARCHAR[]) "
                    f"ELSE list_transform(string_split({s}, '>'), lambda x: trim(x)) END")
        return f"TRY_CAST({s} AS VARCHAR[])"
    if spec.kind == "map":
        source = f"TRY_CAST({s} AS JSON)" if kind == "str" else s
        return f"TRY_CAST({source} AS MAP(VARCHAR, VARCHAR))"
    # json: an object, given as text or as a nested struct
    if kind == "str":
        return f"CASE WHEN json_valid({s}) AND json_type(CAST({s} AS JSON)) = 'OBJECT' THEN CAST({s} AS JSON) END"
    return f"to_json({s})"


def typed_sql(spec: FieldSpec, inputs: Mapping[str, tuple[str, InputKind]]) -> str:
    """SQL of field ``spec`` parsed to its type straight from the input relation (NULL when absent or unparseable),
    for cheap questions asked before full validation, such as the time span of a batch."""
    expr, kind = inputs.get(spec.name, ("NULL::VARCHAR", "str"))
    return _parse(spec, as_text(expr, kind) if kind == "str" else expr, kind)


def _shown(s: str) -> str:
    """The offending input, quoted and cut to 60 characters for a readable reason."""
    return f"'''' || left(CAST({s} AS VARCHAR), 60) || ''''"


def _checks(spec: FieldSpec, s: str, short: bool) -> list[Check]:
    name, p = spec.name, parsed(spec.name)
    tag = f"'`{name}`"
    checks = []
    if spec.required:
        checks.append(Check(f"{s} IS NULL", f"'missing `{name}`'"))
    what = {"float": "a number", "int": "an integer", "bool": "a boolean (true/false)", "ts": "a timestamp",
            "list": "a list (JSON array or a > b > c)", "map": "a JSON object of strings", "json": "a JSON object"}
    if spec.kind in what:
        checks.append(Check(f"{s} IS NOT NULL AND {p} IS NULL", f"{tag} is not {what[spec.kind]}: ' || {_shown(s)}"))
    if spec.finite:
        checks.append(Check(f"NOT isfinite({p})", f"{tag} must be finite, got ' || {p}"))
    for bound, op, fails in ((spec.ge, ">=", "<"), (spec.gt, ">", "<="), (spec.le, "<=", ">"), (spec.lt, "<", ">=")):
        if bound is not None:
            checks.append(Check(f"{p} {fails} {bound}", f"{tag} must be {op} {bound}, got ' || {p}"))
    if spec.max_len is not None and not short:
        checks.append(Check(f"length({p}) > {spec.max_len}",
                            f"{tag} has ' || length({p}) || ' characters, more than {spec.max_len}'"))
    if spec.pattern is not None:
        pattern = spec.pattern.replace("'", "''")
        checks.append(Check(f"NOT regexp_full_match({p}, '{pattern}')",
                            f"{tag} must match {pattern}, got ' || {_shown(s)}"))
    if spec.choices:
        options = ", ".join(f"'{c}'" for c in spec.choices)
        checks.append(Check(f"{p} NOT IN ({options})",
                            f"{tag} ' || {_shown(s)} || ' is not one of {'/'.join(spec.choices)}'"))
    return checks


def validation_sql(specs: Sequence[FieldSpec], inputs: Mapping[str, tuple[str, InputKind]], relation: str, *,
                   extra: Sequence[Check] = (), has_raw: bool = False, pre_reason: str | None = None,
                   short: Collection[str] = (), hidden: Mapping[str, str] | None = None,
                   rows: Literal["all", "valid", "rejected"] = "all") -> str:
    """The SELECT validating ``relation``.

    ``inputs`` maps a field name to ``(sql expression over relation, input kind)``; fields absent from it are
    missing in the source. ``pre_reason`` is an SQL expression naming a problem found before field parsing
    (such as a line that is not JSON); it then becomes the only reason. Fields in ``short`` are known to fit
    their length limit (the caller measured the batch), so their length check is left out. ``hidden`` maps a
    field to the SQL function (a pseudonym) that replaces its value in ``_raw``, the row kept for quarantine.
    ``rows`` keeps only the valid or only the rejected rows: rows are sorted by one boolean test, and the
    readable reasons (string building, the costly part) are only put together for rejected rows.
    """
    hidden = hidden or {}
    level1 = ["_row"] + (["_raw"] if has_raw else []) + [f"{pre_reason or 'NULL::VARCHAR'} AS _pre"]
    level2, values, checks = [], [], []
    for spec in specs:
        s = quote("s$" + spec.name)
        expr, kind = inputs.get(spec.name, ("NULL::VARCHAR", "str"))
        level1.append(f"{as_text(expr, kind) if kind == 'str' else expr} AS {s}")
        level2.append(f"{_parse(spec, s, kind)} AS {parsed(spec.name)}")
        value = parsed(spec.name) if spec.default is None else f"coalesce({parsed(spec.name)}, {literal(spec.default)})"
        values.append(f"{value} AS {quote(spec.name)}")
        checks.extend(_checks(spec, s, spec.name in short))
    checks.extend(extra)
    reasons = ", ".join(f"CASE WHEN {c.condition} THEN {c.message} END" for c in checks)
    bad = " OR ".join(["_pre IS NOT NULL"] + [f"({c.condition})" for c in checks])
    shown = ", ".join(f"{quote(n)} := {hidden[n]}({quote('s$' + n)})" if n in hidden else f"{quote(n)} := {quote('s$' + n)}"
                      for n in inputs)
    raw = "_raw" if has_raw else f"CAST(to_json(struct_pack({shown})) AS VARCHAR)"
    if has_raw:
        for name, function in hidden.items():
            raw = hide_json_ids_sql(raw, name, function)
    typed = f"""SELECT *, {", ".join(values)}
            FROM (SELECT *, {", ".join(level2)} FROM (SELECT {", ".join(level1)} FROM {relation}))"""
    if rows == "valid":
        return f"""
        SELECT _row, {", ".join(quote(s.name) for s in specs)}, NULL::VARCHAR AS _reason, NULL::VARCHAR AS _raw
        FROM ({typed}) WHERE NOT coalesce({bad}, FALSE)"""
    return f"""
        SELECT _row, {", ".join(quote(s.name) for s in specs)}, _reason,
               CASE WHEN _reason IS NOT NULL THEN {raw} END AS _raw
        FROM (
            SELECT *, coalesce(_pre, NULLIF(concat_ws('; ', {reasons}), '')) AS _reason
            FROM ({typed}) {"WHERE " + bad if rows == "rejected" else ""}
        )"""
