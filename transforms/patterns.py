"""Access patterns, the pure part: parameters into SQL, templates and values rendered as a load
renders them, and the comparison of what DynamoDB returned with what the source says.

The I/O (the source's SQL, GetItem and Query) is jobs.verify.patterns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.attributes import render_template
from transforms.context import CompileError, Context, Loc
from transforms.mapping import Mapping
from transforms.values import Options, scalar_value

# :name, not the second colon of a PostgreSQL cast (x::int), not inside a word or a 'string'
# (a string literal is matched first and left as it is).
PARAMETER = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)\b(?!:)")


def parameter_names(sql: str) -> list[str]:
    return list(dict.fromkeys(name for name in PARAMETER.findall(sql) if name))


def substitute(sql: str, values: MappingABC[str, str | None]) -> str:
    """`sql` with each :name replaced by its value as an SQL string literal (NULL for None);
    both engines turn a quoted literal into the column's type where it is compared."""
    def literal(match: re.Match) -> str:
        if match.group(1) is None:
            return match.group(0)
        value = values[match.group(1)]
        return "NULL" if value is None else "'" + value.replace("'", "''") + "'"

    return PARAMETER.sub(literal, sql)


def _context(mapping: Mapping) -> Context:
    return Context({}, Options(mapping.policy.nulls, mapping.policy.out_of_range_numbers))


def render(mapping: Mapping, df: DataFrame, templates: MappingABC[str, str], loc: Loc, where: str) -> DataFrame:
    """`df` with a string column per template, rendered exactly as a load renders keys (NULL
    when a column in it is NULL); CompileError names a column the frame does not have."""
    ctx = _context(mapping)
    columns: list[Column] = []
    for name, template in templates.items():
        text, _ = render_template(ctx, df, template, loc + (name,), where)
        columns.append(text.alias(name))
    if ctx.errors:
        raise CompileError(ctx.errors)
    return df.select("*", *columns)


def as_item_values(mapping: Mapping, df: DataFrame, columns: Sequence[str], loc: Loc, where: str) -> DataFrame:
    """`df` with each column also as its DynamoDB JSON (column `json_<name>`), by the load's type table
    (NULL: no value)."""
    ctx = _context(mapping)
    values: list[Column] = []
    for name in columns:
        column, dtype, kind = ctx.column(df, name, loc, where)
        value = scalar_value(column, dtype, kind, None, ctx.options_for("omit"), f"{where}: {name}")
        values.append(F.when(value.problem.isNull(), value.json).alias(f"json_{name}"))
    if ctx.errors:
        raise CompileError(ctx.errors)
    return df.select("*", *values)


# --- the comparison ---------------------------------------------------------------------------


Key = tuple[str, str | None]


def show_key(key: Key) -> str:
    return key[0] if key[1] is None else f"{key[0]} / {key[1]}"


def key_differences(expected: Sequence[Key], got: Sequence[Key], ordered: bool) -> list[str]:
    """Why `got` is not `expected`: the items missing, those not expected, the first place the
    order differs; [] when they agree."""
    problems = []
    have, want = set(got), set(expected)
    missing = [k for k in expected if k not in have]
    extra = [k for k in got if k not in want]
    if missing:
        problems.append(f"missing {len(missing)}: " + ", ".join(show_key(k) for k in missing[:3])
                        + (" ..." if len(missing) > 3 else ""))
    if extra:
        problems.append(f"not expected {len(extra)}: " + ", ".join(show_key(k) for k in extra[:3])
                        + (" ..." if len(extra) > 3 else ""))
    if not problems and len(got) != len(expected):
        problems.append(f"{len(got)} items where the source has {len(expected)} (a key twice)")
    if not problems and ordered and list(got) != list(expected):
        at = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        problems.append(f"out of order at position {at + 1}: got {show_key(got[at])}, "
                        f"expected {show_key(expected[at])}")
    return problems


def element_differences(attribute: str, expected: Sequence[dict[str, Any]], got: Sequence[dict[str, Any]]) -> list[str]:
    """Element by element, the compared attributes of a list: [] when they agree. Values are
    DynamoDB JSON ({"N": "5"}); a missing attribute is None."""
    problems = []
    if len(got) != len(expected):
        problems.append(f"{attribute} has {len(got)} elements, the source {len(expected)}")
    for i, (have, want) in enumerate(zip(got, expected, strict=False)):
        for name in want:
            if have.get(name) != want[name]:
                problems.append(f"{attribute}[{i}].{name}: got {_shown(have.get(name))}, expected {_shown(want[name])}")
                break
        if len(problems) >= 4:
            break
    return problems


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))[:120]
