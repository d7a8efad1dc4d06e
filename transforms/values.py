"""Spark columns -> DynamoDB attribute values, as Spark SQL expressions (no Python UDFs; JSON documents
go through one Java function, transforms/jvm).

Every compiled value is a `Value`: its DynamoDB wire JSON (`{"S":"..."}`, `{"N":"1.5"}`,
`{"M":{...}}`), its size in bytes by DynamoDB's published rules, and the reason it cannot be
stored (or NULL). A NULL `json` means "omit the attribute".

Numbers never pass through binary floating point: they travel as decimal text, are
normalized in SQL (sign, leading and trailing zeros, exponent) and checked against
DynamoDB's 38 significant digits and its exponent range.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.jvm import dynamodb_json, dynamodb_number

# Column metadata key set by the source reader: what the database said the column is.
KIND = "carve_kind"
NUMBER_TEXT = "number_text"  # exact decimal (or float) text: numeric, money, decimal, real, double
NUMBER_TEXT_ARRAY = "number_text_array"
JSON_TEXT = "json"  # json, jsonb, MariaDB JSON
INSTANT = "instant"  # timestamptz, MariaDB TIMESTAMP: a point in time, shown in UTC with 'Z'
LOCAL_TIMESTAMP = "local_timestamp"  # timestamp without time zone, DATETIME: wall-clock time

NULL_JSON = '{"NULL":true}'


@dataclass(frozen=True)
class Value:
    json: Column
    size: Column
    problem: Column


# Computes an intermediate once: (expression, layer) -> a reference to it. The attribute compiler
# (transforms.attributes.Lets) makes each a column of the rows, layer by layer (a layer may use
# the ones before), so that an expression a value uses several times (a number's normalized
# text, a JSON document's tagged tokens) is evaluated once per row instead of once per use.
# Inside array lambdas there are no rows to add columns to: `inline` leaves the expression be.
Bind = Callable[[Column, int], Column]


def inline(expression: Column, _layer: int) -> Column:
    return expression


@dataclass(frozen=True)
class Options:
    """What the mapping decided for values: the null policy and numbers that do not fit."""

    nulls: str = "omit"  # "omit" | "null"
    out_of_range_numbers: str = "quarantine"  # "quarantine" | "string"


def no_problem() -> Column:
    return F.lit(None).cast("string")


def null_value(options: Options) -> Value:
    if options.nulls == "null":
        return Value(F.lit(NULL_JSON), F.lit(1), no_problem())
    return Value(F.lit(None).cast("string"), F.lit(0), no_problem())


def when_present(column: Column, value: Value, options: Options) -> Value:
    """The value where the column is not NULL, the null policy where it is."""
    null = null_value(options)
    return Value(
        F.when(column.isNull(), null.json).otherwise(value.json),
        F.when(column.isNull(), null.size).otherwise(value.size),
        F.when(column.isNull(), null.problem).otherwise(value.problem),
    )


# --- scalars ---------------------------------------------------------------------------------


def string_value(text: Column) -> Value:
    return Value(F.when(text.isNotNull(), F.to_json(F.struct(text.alias("S")))), F.octet_length(text), no_problem())


def bool_value(flag: Column) -> Value:
    return Value(F.when(flag.isNotNull(), F.to_json(F.struct(flag.alias("BOOL")))), F.lit(1), no_problem())


def base64_text(data: Column) -> Column:
    # Spark 3.5's base64 breaks lines every 76 characters (MIME); DynamoDB wants one line.
    return F.regexp_replace(F.base64(data), r"[\r\n]", "")


def binary_value(data: Column) -> Value:
    return Value(F.concat(F.lit('{"B":"'), base64_text(data), F.lit('"}')), F.length(data), no_problem())


def plain_decimal(text: Column) -> Column:
    """Decimal text -> DynamoDB's shortest form: '-001.500' -> '-1.5', '-0.000' -> '0', '1e+07' -> '1E7'.

    Text that is not a number ('NaN', a double's 'Infinity') stays as it is.
    """
    return F.coalesce(dynamodb_number(text)["plain"], text)


def number_value(text: Column, options: Options, what: str, bind: Bind = inline) -> Value:
    """Decimal text -> N, exactly; what does not fit is quarantined or kept as S, by policy.

    One pass of transforms/jvm/DynamoNumber.java checks and normalizes the text: 38 significant
    digits at most, 1E-130 .. 9.99E+125 in magnitude, the size by the published rules.
    """
    number = bind(dynamodb_number(text), 0)
    fits = number["problem"].isNull()
    number_json = F.concat(F.lit('{"N":"'), number["plain"], F.lit('"}'))  # digits, '-', '.', 'E': nothing to escape
    if options.out_of_range_numbers == "string":
        kept = string_value(text)
        return Value(
            F.when(fits, number_json).otherwise(kept.json),
            F.when(fits, number["size"]).otherwise(kept.size),
            no_problem(),
        )
    return Value(F.when(fits, number_json), number["size"],
                 F.when(~fits, F.concat(F.lit(f"{what}: "), number["problem"])))


INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def integer_value(number: Column) -> Value:
    """Integers are already canonical: no normalization, always within 38 digits."""
    text = number.cast("string")
    digits = F.length(F.regexp_replace(F.regexp_replace(text, "^-", ""), "0+$", ""))
    return Value(
        F.when(number.isNotNull(), F.to_json(F.struct(text.alias("N")))),
        F.ceil(F.greatest(digits, F.lit(1)) / 2).cast("long") + 1,
        no_problem(),
    )


def iso_text(column: Column, dtype: T.DataType, kind: str | None) -> Column:
    if isinstance(dtype, T.DateType):
        return F.date_format(column, "yyyy-MM-dd")
    zone = "'Z'" if kind == INSTANT else ""
    return F.date_format(column, f"yyyy-MM-dd'T'HH:mm:ss.SSSSSS{zone}")


def epoch_seconds(column: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, T.DateType):
        return (F.unix_date(column).cast("long") * 86400).cast("string")
    return F.unix_seconds(column.cast("timestamp")).cast("string")


def as_text(column: Column, dtype: T.DataType, kind: str | None) -> Column:
    """How a value reads inside a template or as `as: string`."""
    if isinstance(dtype, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        return iso_text(column, dtype, kind)
    if isinstance(dtype, T.BinaryType):
        return base64_text(column)
    if isinstance(dtype, (T.DecimalType, T.FloatType, T.DoubleType)) or kind == NUMBER_TEXT:
        return plain_decimal(column.cast("string"))
    return column.cast("string")


# --- JSON text -> M / L ----------------------------------------------------------------------


def json_value(text: Column, what: str, bind: Bind = inline) -> Value:
    """A JSON document (text) as DynamoDB's typed JSON, in one pass of a real parser.

    Numbers keep their text (never a double); the size follows the published rules; a
    document that is not strict JSON or that DynamoDB cannot hold (a number over 38 digits or
    out of range, a key twice in one object, a lone surrogate, over 32 levels) is a problem,
    with the parser's position. transforms/jvm/DynamoJson.java has the rules.
    """
    converted = bind(dynamodb_json(text), 0)  # one parse, read by the json, size and problem
    return Value(converted["json"], converted["size"],
                 F.when(converted["problem"].isNotNull(), F.concat(F.lit(f"{what}: "), converted["problem"])))


# --- arrays ----------------------------------------------------------------------------------


def list_value(array: Column, element: T.DataType, kind: str | None, options: Options, what: str) -> Value:
    element_kind = NUMBER_TEXT if kind == NUMBER_TEXT_ARRAY else None
    null_elem = Value(F.lit(NULL_JSON), F.lit(1), no_problem())

    def compiled(x: Column) -> Value:
        inner = scalar_value(x, element, element_kind, None, options, what)
        return Value(
            F.coalesce(inner.json, null_elem.json),
            # A NULL element is written as {"NULL":true}: 1 byte, whatever the null policy says.
            F.when(inner.json.isNull(), null_elem.size).otherwise(inner.size),
            inner.problem,
        )

    jsons = F.transform(array, lambda x: compiled(x).json)
    sizes = F.transform(array, lambda x: compiled(x).size.cast("long") + 1)
    problems = F.filter(F.transform(array, lambda x: compiled(x).problem), lambda p: p.isNotNull())
    return Value(
        F.concat(F.lit('{"L":['), F.array_join(jsons, ","), F.lit("]}")),
        F.aggregate(sizes, F.lit(3).cast("long"), lambda a, b: a + b),
        F.element_at(problems, 1),
    )


def set_value(array: Column, element: T.DataType, options: Options, what: str, number: bool) -> Value:
    """SS / NS: distinct, non-NULL members; an empty set is no value (DynamoDB rejects it)."""
    present = F.filter(array, lambda x: x.isNotNull())
    if number:
        # A double's text may use exponent forms ('1E-8'): DynamoDB takes them.
        checked = F.array_distinct(F.transform(present, lambda x: dynamodb_number(x.cast("string"))))
        members = checked["plain"]
        json = F.to_json(F.struct(members.alias("NS")))
        sizes = checked["size"]
        bad = F.array_compact(checked["problem"])
        problem = F.when(F.size(bad) > 0, F.concat(F.lit(f"{what}: set member "), F.element_at(bad, 1)))
    else:
        members = F.array_distinct(F.transform(present, lambda x: as_text(x, element, None)))
        json = F.to_json(F.struct(members.alias("SS")))
        sizes = F.transform(members, lambda m: F.octet_length(m).cast("long"))
        problem = no_problem()
    empty = F.size(members) == 0
    null = null_value(options)
    return Value(
        F.when(empty, null.json).otherwise(json),
        # A set costs its members' sizes: DynamoDB's rules give sets no overhead (lists and maps have one).
        F.when(empty, null.size).otherwise(F.aggregate(sizes, F.lit(0).cast("long"), lambda a, b: a + b)),
        problem,
    )


# --- the conversions: the `as:` of a mapping, one function each ------------------------------


@dataclass(frozen=True)
class Cell:
    """One source column being converted: the Spark column, its type, what the database said it is
    (the reader's kind), the value policy, and where it is in the mapping (for reasons)."""

    column: Column
    dtype: T.DataType
    kind: str | None
    options: Options
    what: str
    bind: Bind = inline

    def array_type(self, conversion: str) -> T.ArrayType:
        if not isinstance(self.dtype, T.ArrayType):
            raise TypeError(f"{self.what}: '{conversion}' needs an array column, this one is {self.dtype.simpleString()}")
        return self.dtype


Conversion = Callable[[Cell], Value]


def _to_string(cell: Cell) -> Value:
    return string_value(as_text(cell.column, cell.dtype, cell.kind))


def _to_number(cell: Cell) -> Value:
    if isinstance(cell.dtype, INTEGRAL):
        return integer_value(cell.column)
    text = cell.column if isinstance(cell.dtype, T.StringType) else as_text(cell.column, cell.dtype, cell.kind)
    return number_value(text, cell.options, cell.what, cell.bind)


def _to_bool(cell: Cell) -> Value:
    flag = _bool_of(cell.column, cell.dtype)
    value = bool_value(flag)
    return Value(value.json, value.size, F.when(flag.isNull(), F.lit(f"{cell.what}: not a boolean")))


def _to_binary(cell: Cell) -> Value:
    data = cell.column if isinstance(cell.dtype, T.BinaryType) else F.encode(cell.column.cast("string"), "UTF-8")
    return binary_value(data)


def _to_iso8601(cell: Cell) -> Value:
    return string_value(iso_text(cell.column, cell.dtype, cell.kind))


def _to_epoch_seconds(cell: Cell) -> Value:
    return number_value(epoch_seconds(cell.column, cell.dtype), cell.options, cell.what, cell.bind)


def _to_json(cell: Cell) -> Value:
    return json_value(cell.column.cast("string"), cell.what, cell.bind)


def _to_list(cell: Cell) -> Value:
    return list_value(cell.column, cell.array_type("list").elementType, cell.kind, cell.options, cell.what)


def _to_string_set(cell: Cell) -> Value:
    return set_value(cell.column, cell.array_type("string_set").elementType, cell.options, cell.what, number=False)


def _to_number_set(cell: Cell) -> Value:
    return set_value(cell.column, cell.array_type("number_set").elementType, cell.options, cell.what, number=True)


# Keyed by the names a mapping's `as:` takes (transforms.mapping.model.Conversion lists the same).
CONVERSIONS: dict[str, Conversion] = {
    "string": _to_string,
    "number": _to_number,
    "bool": _to_bool,
    "binary": _to_binary,
    "iso8601": _to_iso8601,
    "epoch_seconds": _to_epoch_seconds,
    "json": _to_json,
    "list": _to_list,
    "string_set": _to_string_set,
    "number_set": _to_number_set,
}


def scalar_value(
    column: Column, dtype: T.DataType, kind: str | None, conversion: str | None, options: Options, what: str,
    bind: Bind = inline,
) -> Value:
    """The DynamoDB value of a column, by its explicit conversion or by the type table."""
    value = CONVERSIONS[conversion or default_conversion(dtype, kind)](Cell(column, dtype, kind, options, what, bind))
    return when_present(column, value, options)


def default_conversion(dtype: T.DataType, kind: str | None) -> str:
    """The type table: what a column becomes when the mapping does not say."""
    if kind == JSON_TEXT:
        return "json"
    if kind == NUMBER_TEXT:
        return "number"
    if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.DecimalType,
                          T.FloatType, T.DoubleType)):
        return "number"
    if isinstance(dtype, T.BooleanType):
        return "bool"
    if isinstance(dtype, T.BinaryType):
        return "binary"
    if isinstance(dtype, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        return "iso8601"
    if isinstance(dtype, T.ArrayType):
        return "list"
    return "string"


def _bool_of(column: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, T.BooleanType):
        return column
    text = F.lower(F.trim(column.cast("string")))
    return F.when(text.isin("true", "t", "1", "yes", "y"), F.lit(True)).when(
        text.isin("false", "f", "0", "no", "n"), F.lit(False)
    )


# --- objects: named values as a map ------------------------------------------------------------


def attribute_piece(name: str, value: Value) -> Column:
    """'"name":<value>' or NULL (omitted), for concat_ws, which skips NULLs."""
    return F.concat(F.lit(json.dumps(name, ensure_ascii=False) + ":"), value.json)


def attribute_size(name: str, value: Value) -> Column:
    return F.when(value.json.isNotNull(),
                  F.lit(len(name.encode("utf-8"))) + F.coalesce(value.size, F.lit(0))).otherwise(F.lit(0))


def combine_problems(problems: list[Column]) -> Column:
    if not problems:
        return no_problem()
    joined = F.concat_ws("; ", *problems)
    return F.when(joined != "", joined)


def map_value(values: list[tuple[str, Value]]) -> Value:
    """An embedded object: M, 3 bytes + 1 per element + names + values."""
    json_pieces = [attribute_piece(n, v) for n, v in values]
    sizes = [attribute_size(n, v) + F.when(v.json.isNotNull(), 1).otherwise(0) for n, v in values]
    return Value(
        F.concat(F.lit('{"M":{'), F.concat_ws(",", *json_pieces), F.lit("}}")),
        reduce(lambda a, b: a + b, sizes, F.lit(3)).cast("long"),
        combine_problems([v.problem for _, v in values]),
    )
